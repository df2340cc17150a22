"""Dashboard benchmark: server time of the trace page for a 5,000-span trace, and of the
traces list and its filters at 10k and at 1M stored spans.

One run starts its own embedded PostgreSQL in a temporary folder and one `pathwatch
serve` on 127.0.0.1 (the worker runs, but generated rows are marked analysed). It

1. sends one trace of --large-spans spans over OTLP/HTTP (protobuf, one request), waits
   until all are stored, then times GET /traces/{id} (the whole page, gzip as browsers
   ask) and GET of one step's panel;
2. generates traces of 25 spans (10 agents, start times over 30 days, one trace in 50
   stalled, a finding on one trace in 10, a rare kind on one in 4,000) with
   `INSERT … SELECT generate_series` up to 10k spans, times each list and filter page,
   grows the same database to 1M spans, runs ANALYZE, and times them again.

Times are measured at the client over loopback (the page's transfer included), the
median of --repeat requests after one warm-up. With --explain, EXPLAIN ANALYZE of the
list query of every filter at the large size is printed.

    .venv/bin/python benchmarks/dashboard.py [--large-spans 5000] [--spans 10000,1000000]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

SPANS_PER_TRACE = 25
AGENTS = 10
MAX_SPANS = 5_000_000
MAX_REPEAT = 200
MS = 1_000_000
LIST_PAGES = {
    "list": "/traces",
    "agent": "/traces?agent=agent-3",
    "status": "/traces?status=stalled",
    "last 24h": "/traces?last=24h",
    "finding kind": "/traces?finding=loop",
    "rule": "/traces?rule=no-shell",
    "rare kind": "/traces?finding=runaway",
    "agent + kind": "/traces?agent=agent-0&finding=loop",
}


# --------------------------------------------------------------------------- one large trace


def _attribute(key: str, value: str | int) -> KeyValue:
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def large_trace_request(span_count: int, *, trace_id: bytes, agent: str) -> bytes:
    """One agent run of `span_count` spans as an OTLP/HTTP protobuf body: a root, then
    model turns and tool calls in turn (every tenth call nested in a chain step), each
    call with its own arguments so that no loop is found."""
    start_ns = time.time_ns() - span_count * 3 * MS
    root_id = (1).to_bytes(8, "big")
    spans = [
        Span(
            trace_id=trace_id,
            span_id=root_id,
            name=f"invoke_agent {agent}",
            kind=Span.SPAN_KIND_INTERNAL,
            start_time_unix_nano=start_ns,
            end_time_unix_nano=start_ns + span_count * 3 * MS,
            attributes=[
                _attribute("gen_ai.operation.name", "invoke_agent"),
                _attribute("gen_ai.agent.name", agent),
            ],
        )
    ]
    parent = root_id
    for number in range(1, span_count):
        span_id = (number + 1).to_bytes(8, "big")
        begin = start_ns + number * 3 * MS
        if number % 20 == 1:
            parent = root_id
            attributes = [_attribute("gen_ai.operation.name", "chain")]
            name = f"chain step {number}"
        elif number % 2:
            attributes = [
                _attribute("gen_ai.operation.name", "chat"),
                _attribute("gen_ai.request.model", "gpt-4o-mini"),
                _attribute("gen_ai.usage.input_tokens", 400 + number),
                _attribute("gen_ai.usage.output_tokens", 40),
            ]
            name = "chat gpt-4o-mini"
        else:
            tool = ("search_docs", "read_file", "run_tests")[number % 3]
            attributes = [
                _attribute("gen_ai.operation.name", "execute_tool"),
                _attribute("gen_ai.tool.name", tool),
                _attribute("gen_ai.tool.call.arguments", f'{{"query": "question {number}"}}'),
                _attribute("gen_ai.tool.call.result", f'{{"hits": {number % 7}}}'),
            ]
            name = f"execute_tool {tool}"
        spans.append(
            Span(
                trace_id=trace_id,
                span_id=span_id,
                parent_span_id=parent,
                name=name,
                kind=Span.SPAN_KIND_INTERNAL,
                start_time_unix_nano=begin,
                end_time_unix_nano=begin + 2 * MS,
                attributes=attributes,
            )
        )
        if number % 20 == 1:
            parent = span_id
    resource = ResourceSpans(scope_spans=[ScopeSpans(spans=spans)])
    resource.resource.attributes.append(_attribute("service.name", agent))
    return ExportTraceServiceRequest(resource_spans=[resource]).SerializeToString()


# --------------------------------------------------------------------------- generated rows

_START_S = "(extract(epoch from now())::bigint - ((g * 7919) %% 2592000))"
_TRACES_SQL = f"""
INSERT INTO traces (project_id, trace_id, agent_name, agent_name_rank, service_name,
    root_span_id, root_name, start_time, end_time, span_count, error_count, status,
    first_received_at, last_received_at, analysed_at, finding_count)
SELECT 1, decode(lpad(to_hex(g), 32, '0'), 'hex'), 'agent-' || (g %% {AGENTS}), 3,
    'svc-' || (g %% {AGENTS}), decode(lpad(to_hex(g * 64), 16, '0'), 'hex'), 'invoke_agent',
    to_timestamp({_START_S}), to_timestamp({_START_S} + 30), {SPANS_PER_TRACE}, 0,
    CASE WHEN g %% 50 = 0 THEN 'stalled' ELSE 'complete' END,
    to_timestamp({_START_S}), to_timestamp({_START_S} + 31), now(),
    CASE WHEN g %% 10 = 0 THEN 1 ELSE 0 END
FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS g
"""
_SPANS_SQL = f"""
INSERT INTO spans (project_id, trace_id, span_id, parent_span_id, name, kind, start_time_ns,
    end_time_ns, status_code, status_message, trace_state, flags, attributes, events, links,
    resource, scope, dropped_counts, received_at, step_type, step_label, step_name,
    tool_name, tool_arguments, tool_result, model, is_error, agent_name, service_name)
SELECT 1, decode(lpad(to_hex(g), 32, '0'), 'hex'),
    decode(lpad(to_hex(g * 64 + s), 16, '0'), 'hex'),
    CASE WHEN s = 0 THEN NULL ELSE decode(lpad(to_hex(g * 64), 16, '0'), 'hex') END,
    CASE WHEN s = 0 THEN 'invoke_agent' WHEN s %% 2 = 1 THEN 'chat gpt-4o'
        ELSE 'execute_tool search' END,
    1, ({_START_S} + s) * 1000000000, ({_START_S} + s) * 1000000000 + 500000000, 0, '', '', 0,
    jsonb_build_object(
        'gen_ai.operation.name', CASE WHEN s %% 2 = 1 THEN 'chat' ELSE 'execute_tool' END,
        'gen_ai.tool.call.arguments', '{{"query": "q' || s || '"}}'),
    '[]', '[]', jsonb_build_object('service.name', 'svc-' || (g %% {AGENTS})),
    '{{}}', '{{}}', now(),
    CASE WHEN s = 0 THEN 'agent' WHEN s %% 2 = 1 THEN 'llm' ELSE 'tool' END,
    CASE WHEN s = 0 THEN 'agent:agent-' || (g %% {AGENTS}) WHEN s %% 2 = 1 THEN 'llm:gpt-4o'
        ELSE 'tool:search' END,
    NULL, CASE WHEN s %% 2 = 0 AND s > 0 THEN 'search' END, NULL, NULL,
    CASE WHEN s %% 2 = 1 THEN 'gpt-4o' END, false, 'agent-' || (g %% {AGENTS}),
    'svc-' || (g %% {AGENTS})
FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS g
CROSS JOIN generate_series(0, {SPANS_PER_TRACE - 1}) AS s
"""
_FINDINGS_SQL = """
INSERT INTO findings (project_id, trace_rowid, agent_name, kind, rule_id, rule_version,
    severity, message, span_ids)
SELECT 1, t.id, t.agent_name,
    CASE WHEN g %% 4000 = 0 THEN 'runaway' WHEN g %% 40 = 0 THEN 'loop'
         WHEN g %% 40 = 10 THEN 'error_step' WHEN g %% 40 = 20 THEN 'never' ELSE 'stall' END,
    CASE WHEN g %% 40 = 20 AND g %% 4000 <> 0 THEN 'no-shell' END,
    CASE WHEN g %% 40 = 20 AND g %% 4000 <> 0 THEN 1 END,
    'error', 'generated finding', ARRAY[lpad(to_hex(g * 64 + 2), 16, '0')]
FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS g
JOIN traces AS t ON t.project_id = 1 AND t.trace_id = decode(lpad(to_hex(g), 32, '0'), 'hex')
WHERE g %% 10 = 0
"""


def generate_rows(url: str, *, first_trace: int, last_trace: int) -> float:
    """Insert traces first_trace..last_trace with their spans and findings; seconds taken."""
    began = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as connection:
        for low in range(first_trace, last_trace + 1, 4000):
            bounds = {"first": low, "last": min(low + 3999, last_trace)}
            with connection.transaction():
                connection.execute(_TRACES_SQL, bounds)  # type: ignore[arg-type]
                connection.execute(_SPANS_SQL, bounds)  # type: ignore[arg-type]
                connection.execute(_FINDINGS_SQL, bounds)  # type: ignore[arg-type]
        connection.execute("ANALYZE")
    return time.perf_counter() - began


def count_spans(url: str) -> int:
    with psycopg.connect(url) as connection:
        row = connection.execute("SELECT count(*) FROM spans").fetchone()
    return int(row[0]) if row else 0


# --------------------------------------------------------------------------- processes


@dataclass(frozen=True)
class Server:
    process: subprocess.Popen[bytes]
    port: int
    otlp_port: int

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def embedded_database() -> Iterator[tuple[str, str]]:
    """A throwaway embedded PostgreSQL; yields (database URL, server version)."""
    from pathwatch.server.embedded_db import start_embedded_database

    folder = Path(tempfile.mkdtemp(prefix="pathwatch-dashboard-bench-", dir="/tmp"))
    folder.chmod(0o755)  # the embedded server runs as a system user when we are root
    database = start_embedded_database(folder)
    try:
        admin = f"postgresql://postgres@/postgres?host={database.socket_dir}"
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute("CREATE DATABASE dashboard_bench")
            row = connection.execute("SHOW server_version").fetchone()
        yield (
            f"postgresql://postgres@/dashboard_bench?host={database.socket_dir}",
            str(row[0] if row else "?"),
        )
    finally:
        database.stop()
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def pathwatch_serve(database_url: str, log_path: Path) -> Iterator[Server]:
    port, otlp_port, grpc_port = free_port(), free_port(), free_port()
    command = [
        sys.executable, "-m", "pathwatch.server.cli", "serve", "--host", "127.0.0.1",
        "--port", str(port), "--otlp-http-port", str(otlp_port),
        "--otlp-grpc-port", str(grpc_port), "--settle-seconds", "1",
    ]  # fmt: skip
    environment = {**os.environ, "DATABASE_URL": database_url}
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=environment)
    server = Server(process, port, otlp_port)
    try:
        wait_until(lambda: _healthy(server), timeout=60, what="pathwatch serve to start")
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _healthy(server: Server) -> bool:
    if server.process.poll() is not None:
        raise SystemExit("pathwatch serve exited early; see its log")
    try:
        return httpx.get(f"{server.base_url}/healthz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def wait_until(predicate: object, *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise SystemExit(f"timed out waiting for {what}")


# --------------------------------------------------------------------------- timing


def time_get(client: httpx.Client, url: str, *, repeat: int) -> tuple[float, int]:
    """Median milliseconds of `repeat` GETs after one warm-up, and the reply's size."""
    reply = client.get(url)
    assert reply.status_code == 200, (url, reply.status_code)
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        reply = client.get(url)
        times.append((time.perf_counter() - began) * 1000)
        assert reply.status_code == 200, (url, reply.status_code)
    return statistics.median(times), len(reply.content)


def measure_large_trace(server: Server, *, span_count: int, repeat: int) -> None:
    trace_id = secrets.token_bytes(16)
    body = large_trace_request(span_count, trace_id=trace_id, agent="large-agent")
    reply = httpx.post(
        f"http://127.0.0.1:{server.otlp_port}/v1/traces",
        content=body,
        headers={"Content-Type": "application/x-protobuf"},
        timeout=60,
    )
    assert reply.status_code == 200, reply.text
    api = f"{server.base_url}/api/v1/traces?agent=large-agent"
    wait_until(
        lambda: any(t["span_count"] == span_count for t in httpx.get(api).json()["traces"]),
        timeout=60,
        what=f"{span_count} spans stored",
    )
    page = f"{server.base_url}/traces/{trace_id.hex()}"
    step = f"{page}/steps/{(span_count // 2).to_bytes(8, 'big').hex()}"
    with httpx.Client(timeout=60, headers={"Accept-Encoding": "gzip"}) as client:
        page_ms, page_bytes = time_get(client, page, repeat=repeat)
        step_ms, _ = time_get(client, step, repeat=repeat)
        api_ms, _ = time_get(
            client, f"{server.base_url}/api/v1/traces/{trace_id.hex()}", repeat=repeat
        )
    print(f"\ntrace page, {span_count} spans ({len(body)} bytes of OTLP protobuf):")
    print(f"  GET /traces/{{id}}              {page_ms:8.1f} ms  ({page_bytes} bytes of HTML)")
    print(f"  GET /traces/{{id}}/steps/{{span}} {step_ms:8.1f} ms")
    print(f"  GET /api/v1/traces/{{id}}       {api_ms:8.1f} ms")
    print(f"  target: page < 3000 ms -> {'met' if page_ms < 3000 else 'MISSED'}")


def measure_list_pages(server: Server, *, repeat: int) -> dict[str, float]:
    timings = {}
    with httpx.Client(timeout=60, headers={"Accept-Encoding": "gzip"}) as client:
        for name, path in LIST_PAGES.items():
            timings[name], _ = time_get(client, server.base_url + path, repeat=repeat)
    return timings


def explain_filters(url: str) -> None:
    """Each query the traces page runs for the heaviest filters, timed in process, with
    EXPLAIN ANALYZE of the statements of the slowest."""
    from sqlalchemy import event

    from pathwatch.server.db import create_db_engine
    from pathwatch.server.queries import dashboard as dashboard_queries
    from pathwatch.server.queries import traces as trace_queries

    engine = create_db_engine(url)
    statements: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def capture(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        client = psycopg.ClientCursor(conn.connection.driver_connection)
        statements.append(client.mogrify(statement, parameters))

    queries = {
        "list_agents": lambda c, f: trace_queries.list_agents(c, project_id=1),
        "rule_ids_in_findings": lambda c, f: dashboard_queries.rule_ids_in_findings(
            c, project_id=1
        ),
        "list_traces": lambda c, f: trace_queries.list_traces(c, project_id=1, limit=50, **f),
        "finding_count_by_kind": lambda c, f: dashboard_queries.finding_count_by_kind(
            c, project_id=1, **{k: v for k, v in f.items() if k != "finding_kind"}
        ),
    }
    filters = {
        "agent": {"agent": "agent-3"},
        "finding kind": {"finding_kind": "loop"},
        "rule": {"rule_id": "no-shell"},
        "agent + kind": {"agent": "agent-0", "finding_kind": "loop"},
    }
    with engine.connect() as connection:
        for name, arguments in filters.items():
            print(f"\n=== filter {name}: {arguments}")
            for query_name, run in queries.items():
                statements.clear()
                began = time.perf_counter()
                run(connection, arguments)
                print(f"  {query_name:24} {(time.perf_counter() - began) * 1000:7.1f} ms")
                plan = connection.exec_driver_sql("EXPLAIN (ANALYZE) " + statements[-1])
                print("\n".join("      " + row[0] for row in plan))
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--large-spans", type=int, default=5_000)
    parser.add_argument("--spans", default="10000,1000000", help="stored span counts to time")
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--explain", action="store_true")
    args = parser.parse_args()
    sizes = sorted(int(size) for size in args.spans.split(","))
    if not 1 <= args.repeat <= MAX_REPEAT or sizes[-1] > MAX_SPANS or args.large_spans > MAX_SPANS:
        raise SystemExit(f"--repeat at most {MAX_REPEAT}, span counts at most {MAX_SPANS}")

    print(
        f"machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    with embedded_database() as (url, pg_version), tempfile.TemporaryDirectory() as logs:
        print(f"PostgreSQL {pg_version} (embedded), repeat {args.repeat} (median after a warm-up)")
        with pathwatch_serve(url, Path(logs) / "serve.log") as server:
            measure_large_trace(server, span_count=args.large_spans, repeat=args.repeat)
            results: dict[int, dict[str, float]] = {}
            generated = 0
            for size in sizes:
                traces = size // SPANS_PER_TRACE
                seconds = generate_rows(url, first_trace=generated + 1, last_trace=traces)
                generated = traces
                stored = count_spans(url)
                print(f"\n{stored} spans stored ({traces} generated traces, ", end="")
                print(f"{seconds:.1f} s to generate)")
                results[size] = measure_list_pages(server, repeat=args.repeat)
                for name, ms in results[size].items():
                    print(f"  {name:14} {LIST_PAGES[name]:40} {ms:8.1f} ms")
            if len(sizes) > 1:
                small, large = results[sizes[0]], results[sizes[-1]]
                print(f"\nratio {sizes[-1]} / {sizes[0]} spans (target <= 2.0):")
                for name in LIST_PAGES:
                    ratio = large[name] / small[name]
                    print(f"  {name:14} {ratio:5.2f}  {'met' if ratio <= 2 else 'MISSED'}")
            if args.explain:
                explain_filters(url)


if __name__ == "__main__":
    main()
