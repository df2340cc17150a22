"""Pathwatch beside Arize Phoenix: the shared OTLP load, identical arguments, fresh stores, one run.

Per repetition it starts a fresh `pathwatch serve` (its own embedded PostgreSQL, a new
database) and a fresh Phoenix (`../shared/bench/phoenix_local.py`, every listener on
127.0.0.1, SQLite store in a new working directory), runs `../shared/bench/otlp_load.py`
from where it lives against each with the same arguments and the same poll interval, and
samples each server's peak RSS and CPU. Then it times "list the 50 most recent traces":

- Pathwatch: `GET /traces` (the dashboard page) when it exists, else
  `GET /api/v1/traces?limit=50`;
- Phoenix: the GraphQL query its UI sends for the project's traces table
  (`TracesTableQuery`, read from Phoenix's own bundled UI at run time), with first=50.

Phoenix is installed in a venv of its own outside the repository:
    python -m venv /tmp/phx && /tmp/phx/bin/pip install arize-phoenix
    .venv/bin/python benchmarks/compare_phoenix.py --phoenix-python /tmp/phx/bin/python \\
        --repeat 3 --json-out compare.json
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import ingest  # the sibling benchmark, imported from its folder

SHARED_BENCH = ingest.REPO.parent / "shared" / "bench"
MAX_LIST_REQUESTS = 50


# --------------------------------------------------------------------------- the load


def load_arguments(args: argparse.Namespace, endpoint: str, count_cmd: str) -> list[str]:
    """otlp_load.py's command line: identical for both servers but for endpoint and count."""
    return [
        sys.executable, str(args.generator), "--endpoint", endpoint,
        "--traces", str(args.traces), "--spans-per-trace", str(args.spans_per_trace),
        "--batch", str(args.batch), "--concurrency", str(args.concurrency),
        "--seed", str(args.seed), "--count-cmd", count_cmd,
        "--wait-interval", str(args.wait_interval), "--wait-timeout", str(args.wait_timeout),
        "--max-seconds", str(args.max_seconds),
    ]  # fmt: skip


def run_load(
    command: list[str], *, server_pids: list[int], database_pid: int | None, log: Path
) -> dict[str, Any]:
    """Run otlp_load.py to the end while sampling the server; its JSON plus our samples."""
    result_path = log.with_suffix(".json")
    children_cpu = _children_cpu_seconds()
    machine_busy = ingest.machine_busy_seconds()
    started = time.perf_counter()
    with (
        ingest.Sampler(server_pids, database_pid, 0.1) as sampler,
        log.open("w") as output,
    ):
        finished = subprocess.run(
            [*command, "--json-out", str(result_path)],
            stdout=output,
            stderr=subprocess.STDOUT,
            check=False,
            timeout=command_timeout(command),
        )
    machine_busy = ingest.machine_busy_seconds() - machine_busy
    children_cpu = _children_cpu_seconds() - children_cpu
    if finished.returncode != 0 or not result_path.exists():
        raise RuntimeError(f"otlp_load.py failed ({finished.returncode}); see {log}")
    result = json.loads(result_path.read_text())
    spans = max(1, result["send"]["accepted_spans"])
    ours = children_cpu + sampler.server.cpu_seconds() + sampler.database.cpu_seconds()
    wall = time.perf_counter() - started
    return {
        "accepted_spans": result["send"]["accepted_spans"],
        "final_statuses": result["send"]["final_statuses"],
        "attempts": result["send"]["attempts"],
        "accepted_spans_per_s": result["send"]["accept_spans_per_s"],
        "stored_spans_per_s": result["e2e"]["spans_per_s"],
        "stored_seconds": result["e2e"]["seconds"],
        "server_peak_rss_mb": round(sampler.server.peak_rss_bytes / 1e6, 1),
        "database_peak_pss_mb": round(sampler.database.peak_pss_bytes / 1e6, 1),
        "server_cpu_ms_per_span": round(sampler.server.cpu_seconds() * 1e3 / spans, 3),
        "database_cpu_ms_per_span": round(sampler.database.cpu_seconds() * 1e3 / spans, 3),
        "load_cpu_ms_per_span": round(children_cpu * 1e3 / spans, 3),
        "other_cpu_share": ingest.other_cpu_share(machine_busy, ours, wall),
        "log": str(log),
    }


def _children_cpu_seconds() -> float:
    """CPU time of our finished children: otlp_load.py and its count commands."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def command_timeout(command: list[str]) -> float:
    """The load's own bounds plus a margin, so that a hung child cannot stall the run."""
    bounds = dict(itertools.pairwise(command))
    return float(bounds["--max-seconds"]) + float(bounds["--wait-timeout"]) + 300


def time_requests(request: urllib.request.Request, *, count: int) -> dict[str, float]:
    """p50 and max of `count` timed requests after one untimed warm-up, in ms."""
    timings = []
    for index in range(count + 1):
        started = time.perf_counter()
        with urllib.request.urlopen(request, timeout=120) as reply:
            reply.read()
        if index:
            timings.append((time.perf_counter() - started) * 1e3)
    return {"p50_ms": round(statistics.median(timings), 2), "max_ms": round(max(timings), 2)}


# --------------------------------------------------------------------------- Pathwatch


def run_pathwatch(args: argparse.Namespace, postgres: ingest.Postgres, rep: int) -> dict[str, Any]:
    url = postgres.create_database(f"compare_{rep}")
    count_cmd = shlex.join([
        str(postgres.bin_dir / "psql"), "-X", "-tA", "-d", url, "-c", "SELECT count(*) FROM spans",
    ])  # fmt: skip
    log = args.work_dir / f"serve-{rep}.log"
    with ingest.pathwatch_server(url, log, split_worker=args.split_worker) as (
        _process,
        port,
        otlp,
        serve_pids,
    ):
        command = load_arguments(args, f"http://127.0.0.1:{otlp}/v1/traces", count_cmd)
        figures = run_load(
            command,
            server_pids=serve_pids,
            database_pid=postgres.postmaster_pid,
            log=args.work_dir / f"load-pathwatch-{rep}.log",
        )
        figures["list"] = pathwatch_list_latency(port, count=args.list_requests)
    figures["command"] = shlex.join(command)
    return figures


def pathwatch_list_latency(port: int, *, count: int) -> dict[str, Any]:
    page = f"http://127.0.0.1:{port}/traces"
    with contextlib.suppress(OSError), urllib.request.urlopen(page, timeout=60) as reply:
        if reply.status == 200 and "html" in reply.headers.get("content-type", ""):
            return {
                "what": "GET /traces (HTML)",
                **time_requests(urllib.request.Request(page), count=count),
            }
    api = f"http://127.0.0.1:{port}/api/v1/traces?limit=50"
    timings = time_requests(urllib.request.Request(api), count=count)
    return {"what": "GET /api/v1/traces?limit=50", **timings}


# --------------------------------------------------------------------------- Phoenix


def phoenix_version(python: str) -> str:
    found = subprocess.run(
        [python, "-c", "import importlib.metadata as m; print(m.version('arize-phoenix'))"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return found.stdout.strip()


def traces_table_query(python: str) -> str:
    """The GraphQL text of Phoenix UI's traces table, read from the installed UI bundle."""
    found = subprocess.run(
        [python, "-c", "import phoenix, os; print(os.path.dirname(phoenix.__file__))"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assets = Path(found.stdout.strip()) / "server" / "static" / "assets"
    for bundle in sorted(assets.glob("*.js")):
        text = bundle.read_text(errors="replace")
        start = text.find("query TracesTableQuery(")
        if start >= 0:
            return text[start : text.index("`", start)]
    raise RuntimeError(f"TracesTableQuery not found in {assets}")


@contextlib.contextmanager
def phoenix_server(python: str, work_dir: Path, log: Path) -> Iterator[tuple[Any, int]]:
    """Phoenix via phoenix_local.py on free loopback ports; yields (process, http port)."""
    port, grpc_port = ingest.free_port(), ingest.free_port()
    environment = {
        **os.environ,
        "PHOENIX_WORKING_DIR": str(work_dir),
        "PHOENIX_HOST": "127.0.0.1",
        "PHOENIX_PORT": str(port),
        "PHOENIX_GRPC_PORT": str(grpc_port),
    }
    command = [python, str(SHARED_BENCH / "phoenix_local.py"), "serve"]
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, env=environment
        )
    try:
        ingest.wait_http_ok(f"http://127.0.0.1:{port}/healthz", process=process, timeout=180)
        yield process, port
    finally:
        ingest.stop_process(process, timeout=60)


def graphql(port: int, query: str, variables: dict[str, Any]) -> urllib.request.Request:
    body = json.dumps({"query": query, "variables": variables}).encode()
    return urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=body,
        headers={"Content-Type": "application/json"},
        method="POST",
    )


def phoenix_list_latency(port: int, query: str, *, count: int) -> dict[str, Any]:
    projects = "{ projects { edges { node { id name } } } }"
    with urllib.request.urlopen(graphql(port, projects, {}), timeout=60) as reply:
        edges = json.loads(reply.read())["data"]["projects"]["edges"]
    project_id = next(e["node"]["id"] for e in edges if e["node"]["name"] == "default")
    request = graphql(port, query, {"id": project_id, "first": 50})
    with urllib.request.urlopen(request, timeout=120) as reply:
        listed = json.loads(reply.read())
    if listed.get("errors"):
        raise RuntimeError(f"Phoenix's traces query failed: {listed['errors'][:1]}")
    rows = len(listed["data"]["node"]["rootSpans"]["edges"])
    timings = time_requests(request, count=count)
    return {"what": f"POST /graphql TracesTableQuery first=50 ({rows} rows)", **timings}


def run_phoenix(args: argparse.Namespace, query: str, rep: int) -> dict[str, Any]:
    store = Path(tempfile.mkdtemp(prefix="phoenix-bench-", dir="/tmp"))
    database = store / "phoenix.db"
    count_cmd = shlex.join([
        sys.executable, "-I", "-c",
        "import sqlite3,sys; c=sqlite3.connect('file:'+sys.argv[1]+'?mode=ro', uri=True); "
        "print(c.execute('SELECT count(*) FROM spans').fetchone()[0])",
        str(database),
    ])  # fmt: skip
    try:
        log = args.work_dir / f"phoenix-{rep}.log"
        with phoenix_server(args.phoenix_python, store, log) as (process, port):
            command = load_arguments(args, f"http://127.0.0.1:{port}/v1/traces", count_cmd)
            figures = run_load(
                command,
                server_pids=[process.pid],
                database_pid=None,
                log=args.work_dir / f"load-phoenix-{rep}.log",
            )
            figures["list"] = phoenix_list_latency(port, query, count=args.list_requests)
    finally:
        shutil.rmtree(store, ignore_errors=True)
    figures["command"] = shlex.join(command)
    return figures


# --------------------------------------------------------------------------- reporting


ROWS = (
    ("accepted_spans_per_s", "accepted (200) spans/s", 0),
    ("stored_spans_per_s", "stored and readable spans/s", 0),
    ("server_peak_rss_mb", "peak RSS of the server process tree (MB)", 0),
    ("database_peak_pss_mb", "peak PSS of PostgreSQL (MB)", 0),
    ("server_cpu_ms_per_span", "server CPU per span (ms)", 3),
    ("database_cpu_ms_per_span", "PostgreSQL CPU per span (ms)", 3),
    ("load_cpu_ms_per_span", "otlp_load.py CPU per span, generation incl. (ms)", 3),
    ("other_cpu_share", "share of all cores used by other processes", 3),
    ("list_p50_ms", "list 50 most recent traces, p50 (ms)", 1),
)


def _value(figures: dict[str, Any], key: str) -> float | None:
    return figures["list"]["p50_ms"] if key == "list_p50_ms" else figures.get(key)


def summary(reps: list[dict[str, Any]]) -> dict[str, Any]:
    table: dict[str, Any] = {}
    for system in ("pathwatch", "phoenix"):
        for key, _label, _digits in ROWS:
            table[f"{system}.{key}"] = ingest.summarise([_value(r[system], key) for r in reps])
    ratios = {
        "stored_pathwatch_over_phoenix": [
            r["pathwatch"]["stored_spans_per_s"] / r["phoenix"]["stored_spans_per_s"] for r in reps
        ],
        "memory_pathwatch_serve_over_phoenix": [
            r["pathwatch"]["server_peak_rss_mb"] / r["phoenix"]["server_peak_rss_mb"] for r in reps
        ],
        "memory_pathwatch_serve_plus_pg_over_phoenix": [
            (r["pathwatch"]["server_peak_rss_mb"] + r["pathwatch"]["database_peak_pss_mb"])
            / r["phoenix"]["server_peak_rss_mb"]
            for r in reps
        ],
        "list_phoenix_over_pathwatch": [
            r["phoenix"]["list"]["p50_ms"] / r["pathwatch"]["list"]["p50_ms"] for r in reps
        ],
    }
    for name, values in ratios.items():
        table[f"ratio.{name}"] = ingest.summarise(values)
    return table


def print_summary(result: dict[str, Any]) -> None:
    print(f"\n== {len(result['repetitions'])} repetition(s), median [min-max]")
    print(f"   Phoenix {result['phoenix_version']}; conditions: {result['conditions']}")
    table = result["summary"]
    for key, label, digits in ROWS:
        cells = []
        for system in ("pathwatch", "phoenix"):
            f = table[f"{system}.{key}"]
            cells.append(
                "n/a"
                if f["median"] is None
                else f"{f['median']:,.{digits}f} [{f['min']:,.{digits}f}-{f['max']:,.{digits}f}]"
            )
        print(f"  {label:42} pathwatch {cells[0]:>28}   phoenix {cells[1]:>28}")
    for key, f in table.items():
        if key.startswith("ratio."):
            print(f"  {key[6:]:55} {f['median']:.3f} [{f['min']:.3f}-{f['max']:.3f}]")


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--phoenix-python", default="/tmp/phx/bin/python")
    parser.add_argument("--generator", type=Path, default=SHARED_BENCH / "otlp_load.py")
    parser.add_argument("--traces", type=int, default=2000)
    parser.add_argument("--spans-per-trace", type=int, default=20)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--wait-interval", type=float, default=0.5, help="count poll, both (s)")
    parser.add_argument("--wait-timeout", type=float, default=900.0, help="bound on storing")
    parser.add_argument("--max-seconds", type=float, default=600.0, help="bound on sending")
    parser.add_argument("--list-requests", type=int, default=10, help="timed list requests")
    parser.add_argument("--repeat", type=int, default=1, help=f"at most {ingest.MAX_REPEAT}")
    parser.add_argument(
        "--split-worker",
        action="store_true",
        help="run Pathwatch's analysis in a second serve process (--role worker)",
    )
    parser.add_argument("--json-out", type=Path, default=None)
    args = parser.parse_args(argv)
    if not 1 <= args.repeat <= ingest.MAX_REPEAT:
        parser.error(f"--repeat must be between 1 and {ingest.MAX_REPEAT}")
    if not 1 <= args.list_requests <= MAX_LIST_REQUESTS:
        parser.error(f"--list-requests must be between 1 and {MAX_LIST_REQUESTS}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.work_dir = Path(tempfile.mkdtemp(prefix="compare-phoenix-"))
    version = phoenix_version(args.phoenix_python)
    query = traces_table_query(args.phoenix_python)
    print(f"Phoenix {version}; logs in {args.work_dir}", flush=True)
    repetitions = []
    with ingest.embedded_postgres() as postgres:
        conditions = ingest.machine_conditions(postgres, args)
        for rep in range(1, args.repeat + 1):
            print(f"-- repetition {rep}: pathwatch", flush=True)
            pathwatch = run_pathwatch(args, postgres, rep)
            print(f"   {json.dumps(pathwatch)}", flush=True)
            print(f"-- repetition {rep}: phoenix", flush=True)
            phoenix = run_phoenix(args, query, rep)
            print(f"   {json.dumps(phoenix)}", flush=True)
            repetitions.append({"pathwatch": pathwatch, "phoenix": phoenix})
    result = {
        "conditions": conditions,
        "phoenix_version": version,
        "repetitions": repetitions,
        "summary": summary(repetitions),
    }
    print_summary(result)
    if args.json_out:
        args.json_out.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
