"""Write span records and their steps to PostgreSQL: the only part of the collector with I/O.

One transaction per export request: COPY into a session-local staging table, then one
INSERT … ON CONFLICT DO NOTHING into `spans` (a re-sent span is stored once; the first
write wins) and one upsert per touched trace. The caller answers 200 only after
`write_spans` returns, so an acknowledged span is committed (synchronous_commit on).
"""

from __future__ import annotations

import logging
import re
import time
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

import orjson
import psycopg
from psycopg import errors as pg_errors
from psycopg_pool import ConnectionPool, PoolTimeout

from pathwatch.collector.conventions import PATHWATCH_SPAN_START_MARKER
from pathwatch.collector.decode import SpanRecord
from pathwatch.collector.errors import StorageUnavailableError
from pathwatch.server.steps import Step

logger = logging.getLogger(__name__)

SPAN_COLUMNS = (
    "project_id", "trace_id", "span_id", "parent_span_id", "name", "kind", "start_time_ns",
    "end_time_ns", "status_code", "status_message", "trace_state", "flags", "attributes",
    "events", "links", "resource", "scope", "dropped_counts", "received_at", "step_type",
    "step_label", "step_name", "tool_name", "tool_call_id", "tool_arguments", "tool_result",
    "tool_definitions", "model", "input_tokens", "output_tokens", "is_error", "token_logprobs",
    "agent_name", "agent_version", "service_name", "is_start_marker",
)  # fmt: skip
_COLUMN_LIST = ", ".join(SPAN_COLUMNS)
_KEY_COLUMNS = ("project_id", "trace_id", "span_id")
_REPLACE_MARKER = ", ".join(f"{c} = excluded.{c}" for c in SPAN_COLUMNS if c not in _KEY_COLUMNS)

_CREATE_STAGING = f"""
CREATE TEMP TABLE IF NOT EXISTS staging_spans ON COMMIT DELETE ROWS AS
SELECT {_COLUMN_LIST} FROM spans WITH NO DATA
"""

_FOLDED_COLUMNS = """project_id, trace_id, span_id, parent_span_id, name, start_time_ns,
    end_time_ns, is_error, step_type, agent_name, agent_version, service_name, is_start_marker"""

# The merge path. Insert the staged spans, then fold them into their traces in one
# statement. Rows are taken in (trace_id, span_id) order so that concurrent writers lock
# in the same order; one row per span id (an ended span before its start marker), since a
# span may repeat in a batch. A re-sent span changes nothing (first write wins), except
# that the ended span replaces the start marker the Pathwatch SDK helper sent when the
# span began. `is_new` (xmax = 0) tells inserted rows from replaced markers, so a span
# is counted once.
_MERGE_SPANS = f"""
WITH inserted AS (
    INSERT INTO spans AS existing ({_COLUMN_LIST})
    SELECT DISTINCT ON (project_id, trace_id, span_id) {_COLUMN_LIST} FROM staging_spans
    ORDER BY project_id, trace_id, span_id, is_start_marker
    ON CONFLICT (project_id, trace_id, span_id) DO UPDATE SET {_REPLACE_MARKER}
        WHERE existing.is_start_marker AND NOT excluded.is_start_marker
    RETURNING {_FOLDED_COLUMNS}, xmax = 0 AS is_new
),"""

# The fast path: every span of the request was new and went straight into `spans` by
# COPY; read them back by key and fold them into their traces.
_FOLD_NEW_SPANS = f"""
WITH inserted AS (
    SELECT {_FOLDED_COLUMNS}, true AS is_new FROM spans
    WHERE project_id = %(project_id)s
      AND (trace_id, span_id) IN (
          SELECT * FROM unnest(CAST(%(trace_ids)s AS bytea[]), CAST(%(span_ids)s AS bytea[])))
),"""

_FOLD_INTO_TRACES = """
ranked AS (
    SELECT *,
           CASE WHEN agent_name IS NOT NULL AND parent_span_id IS NULL THEN 3
                WHEN agent_name IS NOT NULL THEN 2 ELSE 1 END AS rank
    FROM inserted
), by_trace AS (
    SELECT project_id, trace_id,
           (array_agg(coalesce(agent_name, service_name) ORDER BY rank DESC, start_time_ns))[1]
               AS agent_name,
           max(rank) AS agent_name_rank,
           (array_agg(agent_version ORDER BY rank DESC, start_time_ns)
               FILTER (WHERE agent_version IS NOT NULL))[1] AS agent_version,
           (array_agg(service_name ORDER BY start_time_ns))[1] AS service_name,
           (array_agg(span_id) FILTER (WHERE parent_span_id IS NULL AND NOT is_start_marker))[1]
               AS root_span_id,
           (array_agg(name) FILTER (WHERE parent_span_id IS NULL AND NOT is_start_marker))[1]
               AS root_name,
           to_timestamp(min(start_time_ns) / 1e9) AS start_time,
           to_timestamp(max(end_time_ns) FILTER (WHERE end_time_ns >= start_time_ns) / 1e9)
               AS end_time,
           count(*) FILTER (WHERE is_new) AS span_count,
           count(*) FILTER (WHERE is_error) AS error_count
    FROM ranked
    GROUP BY project_id, trace_id
)
INSERT INTO traces (project_id, trace_id, agent_name, agent_name_rank, agent_version,
                    service_name, root_span_id, root_name, start_time, end_time, span_count,
                    error_count, status, first_received_at, last_received_at)
SELECT project_id, trace_id, agent_name, agent_name_rank, agent_version, service_name,
       root_span_id, root_name, start_time, end_time, span_count, error_count, 'open',
       %(now)s, %(now)s
FROM by_trace ORDER BY trace_id
ON CONFLICT (project_id, trace_id) DO UPDATE SET
    agent_name = CASE WHEN excluded.agent_name_rank > traces.agent_name_rank
                      THEN excluded.agent_name ELSE traces.agent_name END,
    agent_name_rank = greatest(traces.agent_name_rank, excluded.agent_name_rank),
    agent_version = coalesce(traces.agent_version, excluded.agent_version),
    root_span_id = coalesce(traces.root_span_id, excluded.root_span_id),
    root_name = coalesce(traces.root_name, excluded.root_name),
    start_time = least(traces.start_time, excluded.start_time),
    end_time = greatest(traces.end_time, excluded.end_time),
    span_count = traces.span_count + excluded.span_count,
    error_count = traces.error_count + excluded.error_count,
    status = 'open',
    last_received_at = excluded.last_received_at
RETURNING span_count
"""
_INSERT_SPANS_AND_TRACES = _MERGE_SPANS + _FOLD_INTO_TRACES
_NEW_SPANS_INTO_TRACES = _FOLD_NEW_SPANS + _FOLD_INTO_TRACES

_DEADLOCK_RETRIES = 3
RETRY_AFTER_SECONDS = 2


def create_write_pool(url: str, *, size: int = 4) -> ConnectionPool:
    """A pool whose connections each hold the staging table."""

    def configure(connection: psycopg.Connection) -> None:
        connection.execute(_CREATE_STAGING)
        connection.commit()

    return ConnectionPool(
        url,
        min_size=1,
        max_size=size,
        configure=configure,
        timeout=3,
        kwargs={"connect_timeout": 5},
        open=True,
        name="ingest",
    )


def write_spans(
    pool: ConnectionPool,
    spans: list[SpanRecord],
    steps: list[Step],
    *,
    project_id: int,
) -> None:
    """Store the spans of one request in one transaction; returns after the commit.

    Raises StorageUnavailableError when the database cannot take the write (retryable).
    """
    if not spans:
        return
    rows = _RowBuilder(project_id).rows(spans, steps)
    for attempt in range(_DEADLOCK_RETRIES):
        try:
            _write_rows(pool, rows, project_id)
        except pg_errors.DeadlockDetected:
            logger.warning("deadlock writing %d spans; retrying (%d)", len(rows), attempt + 1)
            time.sleep(0.05 * (attempt + 1))
            continue
        except (psycopg.OperationalError, PoolTimeout) as error:
            logger.warning(
                "database unavailable for a write of %d spans: %s", len(rows), type(error).__name__
            )
            raise StorageUnavailableError(
                "storage_unavailable", "the database is unavailable; retry later"
            ) from None
        return
    raise StorageUnavailableError("storage_busy", "the database is busy; retry later")


def _write_rows(pool: ConnectionPool, rows: list[tuple[object, ...]], project_id: int) -> None:
    """COPY straight into `spans`; if a span is already stored or repeats in the request
    (a re-sent batch, a start marker to replace), roll back and merge through staging."""
    rows.sort(key=_row_key)  # one lock order for concurrent writers
    with pool.connection() as connection, connection.cursor() as cursor:
        try:
            _copy_rows(cursor, "spans", rows)
            cursor.execute(
                _NEW_SPANS_INTO_TRACES,
                {
                    "now": datetime.now(UTC),
                    "project_id": project_id,
                    "trace_ids": [row[1] for row in rows],
                    "span_ids": [row[2] for row in rows],
                },
            )
        except pg_errors.UniqueViolation:
            connection.rollback()
            _copy_rows(cursor, "staging_spans", rows)
            cursor.execute(_INSERT_SPANS_AND_TRACES, {"now": datetime.now(UTC)})


def _row_key(row: tuple[object, ...]) -> tuple[bytes, bytes]:
    return row[1], row[2]  # type: ignore[return-value]


def _copy_rows(cursor: psycopg.Cursor[Any], table: str, rows: list[tuple[object, ...]]) -> None:
    with cursor.copy(f"COPY {table} ({_COLUMN_LIST}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


# A NUL inside a value parsed from JSON text (tool arguments) would reach jsonb as the
# escape \u0000, which PostgreSQL refuses; an even run of backslashes before it means
# the six characters were literal text and stay as they are.
_NUL_ESCAPE = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")


def _json(value: object) -> str:
    text = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    return _NUL_ESCAPE.sub(r"\1\\ufffd", text) if "\\u0000" in text else text


def is_start_marker(span: SpanRecord) -> bool:
    """A marker the Pathwatch SDK helper exports when a span starts (collector/sdk.py)."""
    return span.attributes.get(PATHWATCH_SPAN_START_MARKER) is True


class _RowBuilder:
    """Rows for COPY. Spans of one resource and scope share those dicts (collector/decode),
    so each is serialised once per request; empty lists and zero counts are constants."""

    def __init__(self, project_id: int) -> None:
        self._project_id = project_id
        self._received_at = datetime.now(UTC)
        self._shared: dict[int, str] = {}

    def rows(self, spans: list[SpanRecord], steps: list[Step]) -> list[tuple[object, ...]]:
        return [self._row(span, step) for span, step in zip(spans, steps, strict=True)]

    def _once(self, value: dict[str, object]) -> str:
        key = id(value)
        if key not in self._shared:
            self._shared[key] = _json(value)
        return self._shared[key]

    def _row(self, span: SpanRecord, step: Step) -> tuple[object, ...]:
        marker = is_start_marker(span)
        return (
            self._project_id, span.trace_id, span.span_id, span.parent_span_id, span.name,
            span.kind, span.start_time_ns, None if marker else span.end_time_ns,
            span.status_code, span.status_message, span.trace_state, span.flags,
            _json(span.attributes), _json(span.events) if span.events else "[]",
            _json(span.links) if span.links else "[]", self._once(span.resource),
            self._once(span.scope),
            _NO_DROPS_JSON if span.dropped_counts == _NO_DROPS else _json(span.dropped_counts),
            self._received_at, step.type, step.label, step.name, step.tool_name,
            step.tool_call_id, None if step.tool_arguments is None else _json(step.tool_arguments),
            step.tool_result,
            None if step.tool_definitions is None else _json(step.tool_definitions), step.model,
            step.input_tokens, step.output_tokens, step.is_error, step.token_logprobs,
            step.agent_name, step.agent_version, step.service_name, marker,
        )  # fmt: skip


_NO_DROPS = MappingProxyType({"attributes": 0, "events": 0, "links": 0})
_NO_DROPS_JSON = '{"attributes":0,"events":0,"links":0}'
