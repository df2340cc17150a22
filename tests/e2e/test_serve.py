"""`pathwatch serve` on its embedded PostgreSQL: start, refuse a second one, stop cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pathwatch.server.demo import DEMO_AGENTS
from tests.conftest import RunningServer, free_port, start_server, wait_for, wait_until_healthy


@pytest.fixture
def data_dir() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="pathwatch-serve-", dir="/tmp"))
    folder.chmod(0o755)
    yield folder
    subprocess.run(["rm", "-rf", str(folder)], check=False)


def _serve_embedded(data_dir: Path, log_dir: Path) -> RunningServer:
    ports = free_port(), free_port(), free_port()
    log_path = log_dir / f"serve-{ports[0]}.log"
    environment = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "pathwatch.server.cli", "serve", "--data-dir", str(data_dir),
             "--port", str(ports[0]), "--otlp-http-port", str(ports[1]),
             "--otlp-grpc-port", str(ports[2])],
            stdout=log, stderr=subprocess.STDOUT, env=environment,
        )  # fmt: skip
    server = RunningServer(process, ports[0], ports[1], ports[2], "", log_path)
    wait_until_healthy(server)
    return server


def test_serve_embedded_refuses_a_second_serve_and_stops_its_database(
    data_dir: Path, tmp_path: Path
) -> None:
    server = _serve_embedded(data_dir, tmp_path)
    postmaster = data_dir / "postgres" / "postmaster.pid"
    try:
        assert postmaster.exists()
        assert "Pathwatch dashboard: http://127.0.0.1:" in server.log()
        assert httpx.get(f"{server.base_url}/api/v1/traces").json()["traces"] == []

        second = subprocess.run(
            [sys.executable, "-m", "pathwatch.server.cli", "serve", "--data-dir", str(data_dir),
             "--port", str(free_port()), "--otlp-http-port", "0", "--otlp-grpc-port", "0"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert second.returncode == 2
        assert f"already running on {data_dir}" in second.stderr
        assert f"pid {server.process.pid}" in second.stderr
    finally:
        server.process.send_signal(signal.SIGTERM)
        exit_code = server.process.wait(timeout=30)

    assert exit_code == 0
    assert not postmaster.exists()


def test_serve_refuses_a_data_dir_closed_to_the_database_user(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("only root runs PostgreSQL as a separate system user")
    private = Path(tempfile.mkdtemp(prefix="pathwatch-private-", dir="/tmp"))
    private.chmod(0o700)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "pathwatch.server.cli", "serve",
             "--data-dir", str(private / "data"), "--port", str(free_port()),
             "--otlp-http-port", "0", "--otlp-grpc-port", "0"],
            capture_output=True, text=True, timeout=60,
            env={k: v for k, v in os.environ.items() if k != "DATABASE_URL"},
        )  # fmt: skip
        mode_after = private.stat().st_mode & 0o777
    finally:
        subprocess.run(["rm", "-rf", str(private)], check=False)

    assert result.returncode == 2
    assert f"cannot enter {private}" in result.stderr
    assert mode_after == 0o700


def test_serve_demo_shows_every_demo_agents_runs(database_url: str, tmp_path: Path) -> None:
    server = start_server(database_url, tmp_path, extra_args=("--demo",))
    try:
        listed = wait_for(
            lambda: (
                len(traces := httpx.get(f"{server.base_url}/api/v1/traces").json()["traces"])
                == sum(agent.runs for agent in DEMO_AGENTS)
                and traces
            ),
            timeout=30,
            message="the demo's traces",
        )
        page = httpx.get(f"{server.base_url}/traces")
    finally:
        server.stop()

    assert {t["agent_name"] for t in listed} == {a.name for a in DEMO_AGENTS}
    assert page.status_code == 200
    assert "doc-searcher" in page.text


def test_a_port_given_as_zero_turns_that_listener_off(database_url: str, tmp_path: Path) -> None:
    server = start_server(
        database_url, tmp_path, extra_args=("--otlp-http-port", "0", "--otlp-grpc-port", "0")
    )
    try:
        with pytest.raises(httpx.ConnectError):
            httpx.post(
                f"{server.otlp_http_url}/v1/traces",
                content=b"",
                headers={"Content-Type": "application/x-protobuf"},
            )
        on_main_port = httpx.post(
            f"{server.base_url}/v1/traces",
            content=b"",
            headers={"Content-Type": "application/x-protobuf"},
        )
    finally:
        server.stop()

    assert on_main_port.status_code == 200
    assert "otlp-http" not in server.log()
    assert "otlp-grpc" not in server.log()
