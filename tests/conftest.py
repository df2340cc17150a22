"""Shared fixtures: one real PostgreSQL per test session, a migrated template database,
fresh clones for tests that commit, and `pathwatch serve` processes on 127.0.0.1."""

from __future__ import annotations

import itertools
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest
from sqlalchemy import Connection, create_engine

from pathwatch.server.db import create_db_engine, libpq_url, sqlalchemy_url, upgrade_database

TEMPLATE_DB = "pathwatch_template"
FIXTURES = Path(__file__).parent / "fixtures"
_clone_numbers = itertools.count(1)


@dataclass(frozen=True)
class PostgresForTests:
    admin_url: str  # a SQLAlchemy URL to the maintenance database

    def url_for(self, database: str) -> str:
        base, _, query = self.admin_url.partition("?")
        base = base.rsplit("/", 1)[0] + "/" + database
        return f"{base}?{query}" if query else base

    def execute_admin(self, sql: str) -> None:
        with psycopg.connect(libpq_url(self.admin_url), autocommit=True) as connection:
            connection.execute(sql)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresForTests]:
    """TEST_DATABASE_URL's server, or an embedded PostgreSQL in a temporary folder."""
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        yield PostgresForTests(admin_url=sqlalchemy_url(url))
        return
    from pathwatch.server.embedded_db import start_embedded_database

    folder = Path(tempfile.mkdtemp(prefix="pathwatch-tests-", dir="/tmp"))
    folder.chmod(0o755)
    database = start_embedded_database(folder, port=5432)
    try:
        yield PostgresForTests(admin_url=database.admin_url())
    finally:
        database.stop()
        subprocess.run(["rm", "-rf", str(folder)], check=False)


@pytest.fixture(scope="session")
def template_database(postgres: PostgresForTests) -> str:
    postgres.execute_admin(f"DROP DATABASE IF EXISTS {TEMPLATE_DB}")
    postgres.execute_admin(f"CREATE DATABASE {TEMPLATE_DB}")
    engine = create_db_engine(postgres.url_for(TEMPLATE_DB))
    upgrade_database(engine)
    engine.dispose()
    return TEMPLATE_DB


@pytest.fixture
def database_url(postgres: PostgresForTests, template_database: str) -> Iterator[str]:
    """A fresh migrated database for a test that commits or runs other processes."""
    name = f"pathwatch_test_{os.getpid()}_{next(_clone_numbers)}"
    postgres.execute_admin(f"CREATE DATABASE {name} TEMPLATE {template_database}")
    yield postgres.url_for(name)
    postgres.execute_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def db_connection(postgres: PostgresForTests, template_database: str) -> Iterator[Connection]:
    """A connection inside an outer transaction that is rolled back after the test."""
    engine = create_engine(postgres.url_for(template_database))
    with engine.connect() as connection:
        transaction = connection.begin()
        connection.begin_nested()
        yield connection
        transaction.rollback()
    engine.dispose()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class RunningServer:
    """A `pathwatch serve` child process on 127.0.0.1."""

    process: subprocess.Popen[bytes]
    port: int
    otlp_http_port: int
    otlp_grpc_port: int
    database_url: str
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def otlp_http_url(self) -> str:
        return f"http://127.0.0.1:{self.otlp_http_port}"

    @property
    def otlp_grpc_target(self) -> str:
        return f"127.0.0.1:{self.otlp_grpc_port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_server(
    database_url: str,
    log_dir: Path,
    *,
    extra_args: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
) -> RunningServer:
    """Start `pathwatch serve` on free loopback ports and wait until /healthz answers."""
    ports = free_port(), free_port(), free_port()
    log_path = log_dir / f"serve-{ports[0]}.log"
    command = [
        sys.executable, "-m", "pathwatch.server.cli", "serve", "--host", "127.0.0.1",
        "--port", str(ports[0]), "--otlp-http-port", str(ports[1]),
        "--otlp-grpc-port", str(ports[2]), *extra_args,
    ]  # fmt: skip
    environment = {**os.environ, "DATABASE_URL": database_url, **(env or {})}
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=environment)
    server = RunningServer(process, ports[0], ports[1], ports[2], database_url, log_path)
    wait_until_healthy(server)
    return server


def wait_until_healthy(server: RunningServer, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"pathwatch serve exited early:\n{server.log()}")
        try:
            if httpx.get(f"{server.base_url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"pathwatch serve did not become healthy:\n{server.log()}")


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[RunningServer]:
    """A fresh server on a fresh database, with a 1 s settle window."""
    running = start_server(database_url, tmp_path, extra_args=("--settle-seconds", "1"))
    yield running
    running.stop()


def wait_for(predicate, *, timeout: float = 20.0, interval: float = 0.1, message: str = ""):  # type: ignore[no-untyped-def]
    """Poll until `predicate()` returns a truthy value; return it or fail at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {message or predicate}")
        time.sleep(interval)
