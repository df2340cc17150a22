"""Ingest benchmark: a fixed OTLP/HTTP agent load into `pathwatch serve`, next to the raw limit.

One run starts its own embedded PostgreSQL in a temporary folder and, per repetition, a
fresh database and a fresh `pathwatch serve` on 127.0.0.1. The load comes from the shared
generator `../shared/bench/otlp_load.py` (imported by path, never copied), built once before
any clock starts. It measures

- accepted spans/s: spans answered 200 / send time;
- stored spans/s: first request → `SELECT count(*) FROM spans` reaches the accepted count;
- peak RSS of the serve process tree (PostgreSQL excluded) and of PostgreSQL (RSS and PSS);
- CPU per span of both;
- the raw limit in the same run, on the same PostgreSQL: protobuf decode + flatten each
  span to a row with JSON attributes + COPY into a table with a primary key and two
  indexes, one commit per request body, one Python thread.

Usage:
    .venv/bin/python benchmarks/ingest.py --repeat 3 --json-out ingest.json
    .venv/bin/python benchmarks/ingest.py --profile-dir /tmp/pw-profile   # py-spy on serve
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import orjson
import psycopg

REPO = Path(__file__).resolve().parent.parent
DEFAULT_GENERATOR = REPO.parent / "shared" / "bench" / "otlp_load.py"
MAX_REPEAT = 10
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

_RAW_TABLE = """
CREATE TABLE raw_spans (
    trace_id bytea NOT NULL,
    span_id bytea NOT NULL,
    parent_span_id bytea,
    name text NOT NULL,
    kind smallint NOT NULL,
    start_time_ns bigint NOT NULL,
    end_time_ns bigint,
    status_code smallint NOT NULL,
    attributes jsonb NOT NULL,
    events jsonb NOT NULL,
    resource jsonb NOT NULL,
    CONSTRAINT pk_raw_spans PRIMARY KEY (trace_id, span_id)
);
CREATE INDEX ix_raw_spans_start_time_ns ON raw_spans (start_time_ns);
CREATE INDEX ix_raw_spans_name ON raw_spans (name);
"""
_RAW_COLUMNS = (
    "trace_id, span_id, parent_span_id, name, kind, start_time_ns, end_time_ns, "
    "status_code, attributes, events, resource"
)


# --------------------------------------------------------------------------- the load


def load_generator(path: Path) -> ModuleType:
    """The shared load generator, imported from where it lives."""
    if not path.is_file():
        sys.exit(f"ingest.py: load generator not found at {path} (see --generator)")
    spec = importlib.util.spec_from_file_location("otlp_load", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["otlp_load"] = module  # its dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def build_load(generator: ModuleType, args: argparse.Namespace) -> Any:
    config = generator.GenConfig(
        traces=args.traces,
        spans_per_trace=args.spans_per_trace,
        batch=args.batch,
        seed=args.seed,
    )
    return generator.build_payloads(config, "protobuf", False, keep_protobuf=False)


# --------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _children_by_parent() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    return children


def process_tree(root: int, *, exclude: frozenset[int] = frozenset()) -> list[int]:
    """`root` and its descendants, minus the subtrees rooted at `exclude`."""
    children = _children_by_parent()
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in exclude:
            continue
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def _cpu_seconds(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def _memory_bytes(pid: int, *, proportional: bool) -> int:
    """RSS, or PSS (shared pages split between the processes that map them)."""
    try:
        if proportional:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
            return 0
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_SIZE
    except (OSError, IndexError, ValueError):
        return 0


def machine_busy_seconds() -> float:
    """CPU time spent busy by all cores since boot (/proc/stat: all but idle and iowait)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / CLOCK_TICKS


def other_cpu_share(machine_busy: float, ours: float, wall_seconds: float) -> float:
    """Share of all cores used by processes outside the benchmark (other users' work)."""
    return round(max(0.0, machine_busy - ours) / (wall_seconds * (os.cpu_count() or 1)), 3)


@dataclass
class TreeUsage:
    """Peak memory and CPU time of a process tree, sampled from /proc."""

    peak_rss_bytes: int = 0
    peak_pss_bytes: int = 0
    cpu_first: dict[int, float] = field(default_factory=dict)
    cpu_last: dict[int, float] = field(default_factory=dict)

    def sample(self, pids: list[int], *, with_pss: bool) -> None:
        self.peak_rss_bytes = max(
            self.peak_rss_bytes, sum(_memory_bytes(p, proportional=False) for p in pids)
        )
        if with_pss:
            pss = sum(_memory_bytes(p, proportional=True) for p in pids)
            self.peak_pss_bytes = max(self.peak_pss_bytes, pss)
        for pid in pids:
            cpu = _cpu_seconds(pid)
            if cpu is not None:
                self.cpu_first.setdefault(pid, cpu)
                self.cpu_last[pid] = cpu

    def cpu_seconds(self) -> float:
        return sum(self.cpu_last[p] - self.cpu_first[p] for p in self.cpu_last)


class Sampler:
    """Samples a server's process tree and, separately, its database's, in a thread."""

    def __init__(self, server_pids: list[int], database_pid: int | None, interval: float) -> None:
        self.server = TreeUsage()
        self.database = TreeUsage()
        self._server_pids = server_pids
        self._database_pid = database_pid
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)

    def __enter__(self) -> Sampler:
        self.sample_once()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.sample_once()

    def sample_once(self) -> None:
        exclude = frozenset([self._database_pid] if self._database_pid else [])
        pids = [pid for root in self._server_pids for pid in process_tree(root, exclude=exclude)]
        self.server.sample(pids, with_pss=False)
        if self._database_pid:
            self.database.sample(process_tree(self._database_pid), with_pss=True)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.sample_once()


def stop_process(process: subprocess.Popen[bytes], *, timeout: float = 20.0) -> None:
    """SIGTERM the process we started, then SIGKILL it if it does not stop in time."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout)


def wait_http_ok(url: str, *, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early (status {process.returncode})")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as reply:
            if reply.status == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer 200 within {timeout:.0f}s")


# --------------------------------------------------------------------------- PostgreSQL


@dataclass(frozen=True)
class Postgres:
    """The benchmark's own embedded PostgreSQL, reached through its Unix socket."""

    folder: Path
    socket_dir: Path
    bin_dir: Path
    postmaster_pid: int

    def url(self, database: str) -> str:
        return f"postgresql://postgres@/{database}?host={self.socket_dir}"

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.url("postgres"), autocommit=True) as connection:
            connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")  # type: ignore[arg-type]
            connection.execute(f"CREATE DATABASE {name}")  # type: ignore[arg-type]
        return self.url(name)

    def version(self) -> str:
        with psycopg.connect(self.url("postgres")) as connection:
            row = connection.execute("SHOW server_version").fetchone()
        return str(row[0]) if row else "?"


@contextlib.contextmanager
def embedded_postgres() -> Iterator[Postgres]:
    from pathwatch.server.embedded_db import start_embedded_database

    folder = Path(tempfile.mkdtemp(prefix="pathwatch-bench-", dir="/tmp"))
    folder.chmod(0o755)  # the embedded server runs as a system user when we are root
    database = start_embedded_database(folder)
    try:
        pid = int((database.pgdata / "postmaster.pid").read_text().split()[0])
        yield Postgres(folder, database.socket_dir, database.bin_dir, pid)
    finally:
        database.stop()
        shutil.rmtree(folder, ignore_errors=True)


def count_rows(url: str, table: str) -> int:
    with psycopg.connect(url, connect_timeout=5) as connection:
        row = connection.execute(f"SELECT count(*) FROM {table}").fetchone()  # type: ignore[arg-type]
    return int(row[0]) if row else 0


def wait_for_count(url: str, target: int, *, interval: float, timeout: float) -> tuple[bool, float]:
    """Poll `SELECT count(*) FROM spans` until it reaches target; (ok, perf_counter at end)."""
    deadline = time.perf_counter() + timeout
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as connection:
        while True:
            row = connection.execute("SELECT count(*) FROM spans").fetchone()
            now = time.perf_counter()
            if row and row[0] >= target:
                return True, now
            if now > deadline:
                return False, now
            time.sleep(interval)


# --------------------------------------------------------------------------- Pathwatch


@contextlib.contextmanager
def pathwatch_server(
    database_url: str, log_path: Path, *, split_worker: bool = False
) -> Iterator[tuple[Any, int, int, list[int]]]:
    """`pathwatch serve` on free loopback ports; yields (process, api port, otlp port, the
    pids of every serve process). With `split_worker`, analysis runs in a second process
    (`--role worker`) beside a `--role collector,web` one."""
    port, otlp_port, grpc_port = free_port(), free_port(), free_port()
    command = [
        sys.executable, "-m", "pathwatch.server.cli", "serve", "--host", "127.0.0.1",
        "--port", str(port), "--otlp-http-port", str(otlp_port),
        "--otlp-grpc-port", str(grpc_port),
    ]  # fmt: skip
    environment = {**os.environ, "DATABASE_URL": database_url}
    processes = []
    with log_path.open("wb") as log:
        roles = ["--role", "collector,web"] if split_worker else []
        processes.append(
            subprocess.Popen(
                [*command, *roles], stdout=log, stderr=subprocess.STDOUT, env=environment
            )
        )
        if split_worker:
            worker = [
                sys.executable,
                "-m",
                "pathwatch.server.cli",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(free_port()),
                "--role",
                "worker",
            ]
            processes.append(
                subprocess.Popen(worker, stdout=log, stderr=subprocess.STDOUT, env=environment)
            )
    try:
        wait_http_ok(f"http://127.0.0.1:{port}/healthz", process=processes[0], timeout=60)
        yield processes[0], port, otlp_port, [p.pid for p in processes]
    finally:
        for process in processes:
            stop_process(process)


@contextlib.contextmanager
def py_spy(pid: int, output: Path | None) -> Iterator[None]:
    """Record the serve process with py-spy (collapsed stacks) while the block runs."""
    executable = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if output is None:
        yield
        return
    if not Path(executable).exists():
        sys.exit("ingest.py: --profile-dir needs py-spy (pip install py-spy into the venv)")
    # --gil: only the thread holding the GIL, i.e. the Python work that serialises requests.
    command = [executable, "record", "--pid", str(pid), "--rate", "100", "--format", "raw", "--gil"]
    profiler = subprocess.Popen(
        [*command, "--output", str(output)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    time.sleep(1.0)  # let py-spy attach before the load starts
    try:
        yield
    finally:
        profiler.send_signal(signal.SIGINT)
        try:
            profiler.wait(timeout=60)
        except subprocess.TimeoutExpired:
            profiler.kill()
            profiler.wait()


def run_pathwatch(
    generator: ModuleType, payloads: Any, postgres: Postgres, args: argparse.Namespace, rep: int
) -> dict[str, Any]:
    """One repetition against a fresh database and a fresh `pathwatch serve`."""
    url = postgres.create_database(f"pathwatch_bench_{rep}")
    log_path = args.work_dir / f"serve-{rep}.log"
    with pathwatch_server(url, log_path, split_worker=args.split_worker) as (
        process,
        _port,
        otlp_port,
        serve_pids,
    ):
        baseline = count_rows(url, "spans")
        endpoint = f"http://127.0.0.1:{otlp_port}/v1/traces"
        profile = args.profile_dir / f"serve-{rep}.collapsed" if args.profile_dir else None
        with (
            py_spy(process.pid, profile),
            Sampler(serve_pids, postgres.postmaster_pid, args.sample_interval) as sampler,
        ):
            client_cpu = time.process_time()
            machine_busy = machine_busy_seconds()
            sent = generator.send_all(
                endpoint, payloads, args.concurrency, {}, args.retries, args.max_seconds,
                60.0, args.max_seconds, 2.0,
            )  # fmt: skip
            ok, t_done = wait_for_count(
                url,
                baseline + sent.accepted_spans,
                interval=args.poll_interval,
                timeout=args.wait_timeout,
            )
            client_cpu = time.process_time() - client_cpu
            machine_busy = machine_busy_seconds() - machine_busy
        latency = analysis_latency(url, timeout=args.wait_timeout)
    figures = pathwatch_figures(sent, ok=ok, t_done=t_done, sampler=sampler, profile=profile)
    figures.update(latency)
    figures["sender_cpu_ms_per_span"] = round(client_cpu * 1e3 / sent.accepted_spans, 3)
    ours = sampler.server.cpu_seconds() + sampler.database.cpu_seconds() + client_cpu
    cores = os.cpu_count() or 1
    figures["cpu_busy_share"] = round(ours / (figures["stored_seconds"] * cores), 3)
    figures["other_cpu_share"] = other_cpu_share(machine_busy, ours, figures["stored_seconds"])
    return figures


_ANALYSIS_LATENCY = """
SELECT count(*) FILTER (WHERE analysed_at IS NULL),
       percentile_cont(ARRAY[0.5, 0.95, 1.0]) WITHIN GROUP (
           ORDER BY extract(epoch FROM analysed_at - last_received_at))
FROM traces
"""


def analysis_latency(url: str, *, timeout: float) -> dict[str, Any]:
    """Seconds from each trace's last span to the analysis that produced its findings
    (`analysed_at - last_received_at`), once every trace is analysed: p50, p95, max."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(url, autocommit=True) as connection:
        while True:
            row = connection.execute(_ANALYSIS_LATENCY).fetchone()
            assert row is not None
            waiting, quantiles = row
            if not waiting or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    p50, p95, worst = quantiles or (None, None, None)
    return {
        "traces_not_analysed": waiting,
        "analysis_latency_p50_s": p50,
        "analysis_latency_p95_s": p95,
        "analysis_latency_max_s": worst,
    }


def pathwatch_figures(
    sent: Any, *, ok: bool, t_done: float, sampler: Sampler, profile: Path | None
) -> dict[str, Any]:
    send_seconds = sent.t_last - sent.t_first
    e2e_seconds = t_done - sent.t_first
    accepted = sent.accepted_spans
    return {
        "accepted_spans": accepted,
        "rejected_spans": sent.rejected_spans,
        "attempts": sent.attempts,
        "statuses": {str(k): v for k, v in Counter(sent.statuses).items()},
        "unsent_requests": sent.unsent_requests,
        "send_seconds": round(send_seconds, 3),
        "accepted_spans_per_s": round(accepted / send_seconds, 1),
        "all_stored": ok,
        "stored_seconds": round(e2e_seconds, 3),
        "stored_spans_per_s": round(accepted / e2e_seconds, 1) if ok else None,
        "server_peak_rss_mb": round(sampler.server.peak_rss_bytes / 1e6, 1),
        "postgres_peak_rss_mb": round(sampler.database.peak_rss_bytes / 1e6, 1),
        "postgres_peak_pss_mb": round(sampler.database.peak_pss_bytes / 1e6, 1),
        "server_cpu_ms_per_span": round(sampler.server.cpu_seconds() * 1e3 / accepted, 3),
        "postgres_cpu_ms_per_span": round(sampler.database.cpu_seconds() * 1e3 / accepted, 3),
        "profile": str(profile) if profile else None,
        "profile_top": profile_top(profile) if profile and profile.exists() else None,
    }


def _frame_name(frame: str) -> str:
    """`func (path/file.py:123)` → `func (path/file.py)`: lines of one function merge."""
    name, _, where = frame.rpartition(" (")
    return f"{name} ({where.rsplit(':', 1)[0]})" if name else frame


def profile_top(path: Path, *, top: int = 15) -> dict[str, list[tuple[str, float]]]:
    """Self and inclusive share of py-spy samples per function, busiest first."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame_name(f) for f in stack.split(";")]
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    if not total:
        return {"self": [], "inclusive": []}
    return {
        "samples": [("all", float(total))],
        "self": [(f, round(100 * n / total, 1)) for f, n in own.most_common(top)],
        "inclusive": [(f, round(100 * n / total, 1)) for f, n in inclusive.most_common(top)],
    }


# --------------------------------------------------------------------------- raw limit


def _any_value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _any_value(kv.value) for kv in value.kvlist_value.values}
    if kind == "bytes_value":
        return value.bytes_value.hex()
    return None if kind is None else getattr(value, kind)


def _attributes(key_values: Any) -> dict[str, Any]:
    return {kv.key: _any_value(kv.value) for kv in key_values}


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def flatten_request(request: Any) -> list[tuple[Any, ...]]:
    """One row per span: ids, names, times, status and JSON attributes, events, resource."""
    rows = []
    for resource_spans in request.resource_spans:
        resource = _json(_attributes(resource_spans.resource.attributes))
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                events = [
                    {
                        "name": e.name,
                        "time_ns": e.time_unix_nano,
                        "attributes": _attributes(e.attributes),
                    }
                    for e in span.events
                ]
                rows.append((
                    span.trace_id, span.span_id, span.parent_span_id or None, span.name,
                    span.kind, span.start_time_unix_nano, span.end_time_unix_nano or None,
                    span.status.code, _json(_attributes(span.attributes)), _json(events),
                    resource,
                ))  # fmt: skip
    return rows


def run_raw(payloads: Any, postgres: Postgres, rep: int) -> dict[str, Any]:
    """Decode + flatten + COPY + commit per request body, one thread, fresh table."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    bodies = payloads.bodies
    spans = sum(payloads.span_counts)
    url = postgres.create_database(f"raw_bench_{rep}")
    with psycopg.connect(url) as connection:
        connection.execute(_RAW_TABLE)  # type: ignore[arg-type]
        connection.commit()
        database = TreeUsage()
        database.sample(process_tree(postgres.postmaster_pid), with_pss=False)
        client_cpu = time.thread_time()
        started = time.perf_counter()
        requests = [ExportTraceServiceRequest.FromString(body) for body in bodies]
        decoded = time.perf_counter()
        row_batches = [flatten_request(request) for request in requests]
        flattened = time.perf_counter()
        for rows in row_batches:
            with (
                connection.cursor() as cursor,
                cursor.copy(f"COPY raw_spans ({_RAW_COLUMNS}) FROM STDIN") as copy,  # type: ignore[arg-type]
            ):
                for row in rows:
                    copy.write_row(row)
            connection.commit()
        copied = time.perf_counter()
        client_cpu = time.thread_time() - client_cpu
        database.sample(process_tree(postgres.postmaster_pid), with_pss=False)
    stored = count_rows(url, "raw_spans")
    return {
        "spans": stored,
        "decode_spans_per_s": round(spans / (decoded - started), 1),
        "flatten_spans_per_s": round(spans / (flattened - decoded), 1),
        "copy_commit_spans_per_s": round(spans / (copied - flattened), 1),
        "raw_spans_per_s": round(spans / (copied - started), 1),
        "client_cpu_ms_per_span": round(client_cpu * 1e3 / spans, 3),
        "postgres_cpu_ms_per_span": round(database.cpu_seconds() * 1e3 / spans, 3),
    }


# --------------------------------------------------------------------------- reporting


def machine_conditions(postgres: Postgres, args: argparse.Namespace) -> dict[str, Any]:
    from google.protobuf.internal import api_implementation

    memory_kb = 0
    cpu_model = "?"
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            memory_kb = int(line.split()[1])
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu_model = line.split(":", 1)[1].strip()
            break
    return {
        "date_utc": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "nproc": os.cpu_count(),
        "cpu_model": cpu_model,
        "memory_gib": round(memory_kb / 2**20, 1),
        "python": platform.python_version(),
        "protobuf_backend": api_implementation.Type(),
        "postgres": postgres.version(),
        "pathwatch_commit": git_state(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "arguments": {k: str(v) for k, v in sorted(vars(args).items())},
    }


def git_state() -> str:
    """The commit the server ran from, marked when the work tree had other changes."""
    found = subprocess.run(
        ["git", "-C", str(REPO), "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    return found.stdout.strip() or "unknown"


def summarise(values: list[float | None]) -> dict[str, float | None]:
    numbers = [v for v in values if v is not None]
    if not numbers:
        return {"median": None, "min": None, "max": None}
    return {"median": statistics.median(numbers), "min": min(numbers), "max": max(numbers)}


SUMMARY_ROWS = (
    ("pathwatch", "accepted_spans_per_s", "accepted (200) spans/s"),
    ("pathwatch", "stored_spans_per_s", "stored and readable spans/s"),
    ("pathwatch", "server_peak_rss_mb", "peak RSS, serve tree (MB)"),
    ("pathwatch", "postgres_peak_pss_mb", "peak PSS, PostgreSQL (MB)"),
    ("pathwatch", "postgres_peak_rss_mb", "peak RSS sum, PostgreSQL (MB)"),
    ("pathwatch", "server_cpu_ms_per_span", "serve CPU per span (ms)"),
    ("pathwatch", "postgres_cpu_ms_per_span", "PostgreSQL CPU per span (ms)"),
    ("pathwatch", "sender_cpu_ms_per_span", "load sender CPU per span (ms)"),
    ("pathwatch", "analysis_latency_p50_s", "last span -> analysed, p50 (s)"),
    ("pathwatch", "analysis_latency_p95_s", "last span -> analysed, p95 (s)"),
    ("pathwatch", "analysis_latency_max_s", "last span -> analysed, max (s)"),
    ("pathwatch", "cpu_busy_share", "share of all cores busy (serve+PG+sender)"),
    ("pathwatch", "other_cpu_share", "share of all cores used by other processes"),
    ("raw", "decode_spans_per_s", "raw: protobuf decode spans/s"),
    ("raw", "flatten_spans_per_s", "raw: flatten to rows spans/s"),
    ("raw", "copy_commit_spans_per_s", "raw: COPY + commit spans/s"),
    ("raw", "raw_spans_per_s", "raw limit: decode+flatten+COPY spans/s"),
    ("raw", "client_cpu_ms_per_span", "raw: client CPU per span (ms)"),
    ("raw", "postgres_cpu_ms_per_span", "raw: PostgreSQL CPU per span (ms)"),
    ("ratio", "stored_over_raw", "Pathwatch stored / raw limit"),
)


def summary_table(repetitions: list[dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    return {
        f"{part}.{key}": summarise([rep[part].get(key) for rep in repetitions])
        for part, key, _label in SUMMARY_ROWS
    }


def print_report(result: dict[str, Any]) -> None:
    conditions = result["conditions"]
    print("\n== conditions")
    keys = ("date_utc", "nproc", "cpu_model", "memory_gib", "python", "protobuf_backend")
    for key in (*keys, "pathwatch_commit"):
        print(f"  {key}: {conditions[key]}")
    print(f"  postgres: {conditions['postgres']}")
    print(f"  command: {conditions['command']}")
    print(f"  load: {result['load']}")
    print(f"\n== {len(result['repetitions'])} repetition(s): median [min-max]")
    for part, key, label in SUMMARY_ROWS:
        figures = result["summary"][f"{part}.{key}"]
        if figures["median"] is None:
            print(f"  {label:44} n/a")
            continue
        digits = 3 if "ratio" in part or "cpu" in key else 2 if "latency" in key else 0
        print(
            f"  {label:44} {figures['median']:>12,.{digits}f}  "
            f"[{figures['min']:,.{digits}f}-{figures['max']:,.{digits}f}]"
        )
    for index, rep in enumerate(result["repetitions"], start=1):
        pw = rep["pathwatch"]
        print(
            f"  rep {index}: statuses {pw['statuses']}, attempts {pw['attempts']}, "
            f"all stored {pw['all_stored']}"
        )
        if pw["profile_top"]:
            print_profile(pw["profile_top"])


def print_profile(top: dict[str, list[tuple[str, float]]]) -> None:
    print("  py-spy --gil samples of the serve process (the profiler slows it down):")
    for kind in ("self", "inclusive"):
        print(f"    % {kind}")
        for frame, share in top[kind]:
            print(f"    {share:5.1f}  {frame}")


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--generator", type=Path, default=DEFAULT_GENERATOR)
    parser.add_argument("--traces", type=int, default=2000)
    parser.add_argument("--spans-per-trace", type=int, default=20)
    parser.add_argument("--batch", type=int, default=500, help="spans per request")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=1, help=f"repetitions, at most {MAX_REPEAT}")
    parser.add_argument("--retries", type=int, default=20, help="per request, on 429/503")
    parser.add_argument("--max-seconds", type=float, default=600.0, help="bound on sending")
    parser.add_argument("--wait-timeout", type=float, default=600.0, help="bound on storing")
    parser.add_argument("--poll-interval", type=float, default=0.1, help="count poll (s)")
    parser.add_argument("--sample-interval", type=float, default=0.1, help="RSS/CPU poll (s)")
    parser.add_argument(
        "--split-worker",
        action="store_true",
        help="run analysis in a second serve process (--role worker)",
    )
    parser.add_argument("--skip-raw", action="store_true", help="do not measure the raw limit")
    parser.add_argument("--profile-dir", type=Path, default=None, help="py-spy serve into here")
    parser.add_argument("--json-out", type=Path, default=None)
    args = parser.parse_args(argv)
    if not 1 <= args.repeat <= MAX_REPEAT:
        parser.error(f"--repeat must be between 1 and {MAX_REPEAT}")
    return args


def run_repetition(
    generator: ModuleType, payloads: Any, postgres: Postgres, args: argparse.Namespace, rep: int
) -> dict[str, Any]:
    print(f"-- repetition {rep}: pathwatch serve", flush=True)
    pathwatch = run_pathwatch(generator, payloads, postgres, args, rep)
    print(f"   {json.dumps(pathwatch)}", flush=True)
    raw: dict[str, Any] = {}
    ratio: dict[str, Any] = {}
    if not args.skip_raw:
        print(f"-- repetition {rep}: raw limit", flush=True)
        raw = run_raw(payloads, postgres, rep)
        print(f"   {json.dumps(raw)}", flush=True)
        if pathwatch["stored_spans_per_s"]:
            ratio["stored_over_raw"] = pathwatch["stored_spans_per_s"] / raw["raw_spans_per_s"]
    return {"pathwatch": pathwatch, "raw": raw, "ratio": ratio}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    generator = load_generator(args.generator)
    print(f"generating {args.traces} traces x {args.spans_per_trace} spans ...", flush=True)
    payloads = build_load(generator, args)
    load = {
        "generator": f"{args.generator} {generator.__version__}",
        "requests": len(payloads.bodies),
        "spans": sum(payloads.span_counts),
        "protobuf_mb": round(payloads.raw_bytes / 1e6, 1),
        "batch": args.batch,
        "concurrency": args.concurrency,
        "seed": args.seed,
    }
    print(f"load: {load}", flush=True)
    args.work_dir = Path(tempfile.mkdtemp(prefix="pathwatch-bench-logs-"))
    if args.profile_dir:
        args.profile_dir.mkdir(parents=True, exist_ok=True)
    with embedded_postgres() as postgres:
        conditions = machine_conditions(postgres, args)
        repetitions = [
            run_repetition(generator, payloads, postgres, args, rep)
            for rep in range(1, args.repeat + 1)
        ]
    result = {
        "conditions": conditions,
        "load": load,
        "repetitions": repetitions,
        "summary": summary_table(repetitions),
        "serve_logs": str(args.work_dir),
    }
    print_report(result)
    if args.json_out:
        args.json_out.write_text(json.dumps(result, indent=1))
    failed = any(not rep["pathwatch"]["all_stored"] for rep in repetitions)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
