"""Analysis claims traces with FOR UPDATE SKIP LOCKED: two workers never take the same
trace, and a worker that dies mid-analysis leaves its traces to be claimed again."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text

from pathwatch.collector.decode import parse_protobuf, records_from_request
from pathwatch.collector.limits import IngestLimits
from pathwatch.collector.normalise import normalise_span
from pathwatch.collector.write import create_write_pool, write_spans
from pathwatch.server.db import create_db_engine, libpq_url
from pathwatch.server.queries.analysis import claim_due_traces
from pathwatch.server.worker import LifecycleSettings, analyse_due_traces
from tests.conftest import FIXTURES

CLIENTS = ("otel-py-http.pb", "otel-node-proto.pb", "traceloop.pb", "openai-v2.pb")


@pytest.fixture
def finished_traces(database_url: str) -> Iterator[Engine]:
    """Four captured client runs stored through the write path and marked complete."""
    pool = create_write_pool(libpq_url(database_url))
    for name in CLIENTS:
        request = parse_protobuf((FIXTURES / "clients" / name).read_bytes())
        spans = records_from_request(request, limits=IngestLimits()).spans
        write_spans(pool, spans, [normalise_span(s) for s in spans], project_id=1)
    pool.close()
    engine = create_db_engine(database_url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE traces SET status = 'complete'"))
    yield engine
    engine.dispose()


def test_concurrent_claims_never_share_a_trace(finished_traces: Engine) -> None:
    with finished_traces.connect() as first, finished_traces.connect() as second:
        first.begin()
        second.begin()
        mine = claim_due_traces(first, limit=2)
        theirs = claim_due_traces(second, limit=10)
        first.rollback()
        second.rollback()

    assert len(mine) == 2
    assert len(theirs) == len(CLIENTS) - 2
    assert {c.rowid for c in mine}.isdisjoint({c.rowid for c in theirs})


def test_traces_of_a_worker_that_died_mid_analysis_are_claimed_again(
    finished_traces: Engine,
) -> None:
    with finished_traces.connect() as dying:
        dying.begin()
        assert len(claim_due_traces(dying, limit=10)) == len(CLIENTS)
    # The connection closed without a commit, as when the process is killed.

    analysed = analyse_due_traces(finished_traces, LifecycleSettings())
    again = analyse_due_traces(finished_traces, LifecycleSettings())

    assert (analysed, again) == (len(CLIENTS), 0)
    with finished_traces.connect() as connection:
        loops = connection.execute(
            text("SELECT count(*) FROM findings WHERE kind = 'loop'")
        ).scalar()
    assert loops == len(CLIENTS)
