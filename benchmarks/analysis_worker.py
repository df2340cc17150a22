"""Analysis throughput of the worker on stored traces, next to ingest throughput.

Stores N traces of 20 to 50 steps (agent root, model turns, tool calls with some repeats
and failures) through the collector's write path (decode → normalise → COPY) into a
fresh embedded PostgreSQL, timing that as ingest; marks them finished, then times the
worker's `analyse_due_traces` (claim with SKIP LOCKED, load spans, analyse, store
findings) until every trace is analysed. One process, one worker thread.

    .venv/bin/python benchmarks/analysis_worker.py [--traces 10000] [--seed 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import tempfile
import time
from pathlib import Path

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status
from sqlalchemy import text

from pathwatch.collector.decode import records_from_request
from pathwatch.collector.limits import IngestLimits
from pathwatch.collector.normalise import normalise_span
from pathwatch.collector.write import create_write_pool, write_spans
from pathwatch.server.db import create_db_engine, libpq_url, upgrade_database
from pathwatch.server.embedded_db import start_embedded_database
from pathwatch.server.models import DEFAULT_PROJECT_ID
from pathwatch.server.worker import LifecycleSettings, analyse_due_traces

TOOLS = ("search_docs", "get_order", "refund", "send_email")
MS = 1_000_000


def _attribute(key: str, value: str) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(string_value=value))


def _span(trace_id: bytes, number: int, parent: bytes, start: int, attributes: list[KeyValue],
          name: str, *, failed: bool = False) -> Span:  # fmt: skip
    return Span(
        trace_id=trace_id, span_id=number.to_bytes(8, "big"), parent_span_id=parent, name=name,
        start_time_unix_nano=start, end_time_unix_nano=start + 5 * MS, attributes=attributes,
        status=Status(code=Status.STATUS_CODE_ERROR if failed else Status.STATUS_CODE_UNSET),
    )  # fmt: skip


def synthetic_trace(index: int, rng: random.Random, start: int) -> list[Span]:
    trace_id = (index + 1).to_bytes(16, "big")
    root = (index * 100 + 1).to_bytes(8, "big")
    spans = [
        _span(
            trace_id,
            index * 100 + 1,
            b"",
            start,
            [
                _attribute("gen_ai.operation.name", "invoke_agent"),
                _attribute("gen_ai.agent.name", "bench-agent"),
            ],
            "invoke_agent bench-agent",
        )
    ]
    for position in range(2, rng.randint(21, 51)):
        at = start + position * 10 * MS
        if position % 2:
            attributes = [
                _attribute("gen_ai.operation.name", "chat"),
                _attribute("gen_ai.request.model", "gpt-4o-mini"),
            ]
            spans.append(_span(trace_id, index * 100 + position, root, at, attributes, "chat"))
            continue
        tool = rng.choice(TOOLS)
        query = rng.choice(("a", "b", "c"))
        attributes = [
            _attribute("gen_ai.operation.name", "execute_tool"),
            _attribute("gen_ai.tool.name", tool),
            _attribute("gen_ai.tool.call.arguments", json.dumps({"q": query})),
            _attribute("gen_ai.tool.call.result", f"result {query}"),
        ]
        spans.append(
            _span(
                trace_id,
                index * 100 + position,
                root,
                at,
                attributes,
                f"execute_tool {tool}",
                failed=rng.random() < 0.03,
            )
        )
    spans[0].end_time_unix_nano = spans[-1].end_time_unix_nano + MS
    return spans


def store_traces(url: str, traces: int, seed: int) -> tuple[int, float]:
    rng = random.Random(seed)
    pool = create_write_pool(libpq_url(url))
    limits = IngestLimits()
    start_ns = time.time_ns() - 3600 * 1000 * MS
    spans_stored = 0
    began = time.perf_counter()
    for batch_start in range(0, traces, 20):
        spans = [
            span
            for index in range(batch_start, min(traces, batch_start + 20))
            for span in synthetic_trace(index, rng, start_ns + index * MS)
        ]
        request = ExportTraceServiceRequest(
            resource_spans=[
                ResourceSpans(
                    resource={"attributes": [_attribute("service.name", "bench")]},
                    scope_spans=[ScopeSpans(spans=spans)],
                )
            ]
        )
        decoded = records_from_request(
            ExportTraceServiceRequest.FromString(request.SerializeToString()), limits=limits
        )
        write_spans(
            pool,
            decoded.spans,
            [normalise_span(s) for s in decoded.spans],
            project_id=DEFAULT_PROJECT_ID,
        )
        spans_stored += len(decoded.spans)
    elapsed = time.perf_counter() - began
    pool.close()
    return spans_stored, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--traces", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="pathwatch-bench-", dir="/tmp"))
    folder.chmod(0o755)
    database = start_embedded_database(folder)
    try:
        engine = create_db_engine(database.url)
        upgrade_database(engine)
        spans, ingest_seconds = store_traces(database.url, args.traces, args.seed)
        with engine.begin() as connection:
            connection.execute(text("UPDATE traces SET status = 'complete'"))
        settings = LifecycleSettings(analysis_batch_size=100)
        began = time.perf_counter()
        analysed = 0
        deadline = began + 1800
        while time.perf_counter() < deadline:
            done = analyse_due_traces(engine, settings)
            if not done:
                break
            analysed += done
        analysis_seconds = time.perf_counter() - began
        with engine.connect() as connection:
            findings = connection.execute(text("SELECT count(*) FROM findings")).scalar()
        engine.dispose()
    finally:
        database.stop()
        shutil.rmtree(folder, ignore_errors=True)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cpus, Python {platform.python_version()}"
    )
    print(f"traces: {args.traces}, spans: {spans} ({spans / args.traces:.1f} per trace)")
    print(
        f"ingest (decode, normalise, COPY, commit per 20 traces): "
        f"{args.traces / ingest_seconds:,.0f} traces/s, {spans / ingest_seconds:,.0f} spans/s"
    )
    print(
        f"analysis (worker, batches of 100): {analysed / analysis_seconds:,.0f} traces/s, "
        f"{spans / analysis_seconds:,.0f} spans/s; {findings} findings"
    )
    print(
        f"analysis / ingest: {(analysed / analysis_seconds) / (args.traces / ingest_seconds):.2f}"
    )


if __name__ == "__main__":
    main()
