"""`pathwatch serve`: every role in one process, started and stopped in order."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import uvicorn
from fastapi import FastAPI
from sqlalchemy import Engine

from pathwatch.collector.http import Receiver
from pathwatch.collector.limits import IngestLimits
from pathwatch.collector.write import create_write_pool
from pathwatch.server.app import allowed_hosts_for, create_app, create_otlp_app
from pathwatch.server.db import create_db_engine, libpq_url, upgrade_database
from pathwatch.server.embedded_db import default_data_dir, start_embedded_database
from pathwatch.server.errors import StartupError
from pathwatch.server.models import DEFAULT_PROJECT_ID
from pathwatch.server.worker import LifecycleSettings, Worker

logger = logging.getLogger(__name__)


# collector: OTLP receivers; worker: trace lifecycle and analysis; web: API and dashboard.
ROLES = frozenset({"collector", "worker", "web"})


@dataclass(frozen=True)
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 6180
    otlp_http_port: int = 4318
    otlp_grpc_port: int = 4317
    data_dir: Path | None = None
    database_url: str | None = None
    demo: bool = False
    settle_seconds: float = 2.0
    roles: frozenset[str] = ROLES
    stall_timeout_seconds: float = 300.0


class _Server(uvicorn.Server):
    """A uvicorn server whose signals are handled by `serve` for all listeners at once."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def serve(options: ServeOptions) -> int:
    """Run the chosen roles until SIGINT or SIGTERM; by default all of them, in this process."""
    with contextlib.ExitStack() as stack:
        database_url = _database(options, stack)
        engine = create_db_engine(database_url)
        stack.callback(engine.dispose)
        upgrade_database(engine)
        receiver = None
        if "collector" in options.roles:
            receiver = _start_collector(options, database_url, stack)
        if "worker" in options.roles:
            settings = LifecycleSettings(
                settle_seconds=options.settle_seconds,
                stall_timeout_seconds=options.stall_timeout_seconds,
            )
            worker = Worker(engine, settings)
            worker.start()
            stack.callback(worker.stop)
        servers = _http_servers(options, engine=engine, receiver=receiver)
        asyncio.run(_run_http(servers, options))
    logger.info("stopped")
    return 0


def _start_collector(
    options: ServeOptions, database_url: str, stack: contextlib.ExitStack
) -> Receiver:
    pool = create_write_pool(libpq_url(database_url))
    stack.callback(pool.close)
    receiver = Receiver(
        pool=pool, limits=IngestLimits.from_environment(), project_id=DEFAULT_PROJECT_ID
    )
    if options.otlp_grpc_port:
        from pathwatch.collector.grpc_receiver import start_grpc_server

        grpc_server = start_grpc_server(receiver, host=options.host, port=options.otlp_grpc_port)
        stack.callback(lambda: grpc_server.stop(grace=5).wait())
    return receiver


def _database(options: ServeOptions, stack: contextlib.ExitStack) -> str:
    if options.database_url:
        return options.database_url
    data_dir = (options.data_dir or default_data_dir()).expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    stack.enter_context(_exclusive_lock(data_dir))
    database = start_embedded_database(data_dir)
    stack.callback(database.stop)
    logger.info("embedded PostgreSQL running in %s", database.pgdata)
    return database.url


@contextlib.contextmanager
def _exclusive_lock(data_dir: Path) -> Iterator[IO[str]]:
    """One `serve` per data directory; a second one is told who holds it."""
    lock_path = data_dir / "serve.lock"
    handle = lock_path.open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise StartupError(
            "data_dir_in_use",
            f"Pathwatch is already running on {data_dir} (pid {holder}); stop it first or "
            "choose another --data-dir",
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    try:
        yield handle
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def _http_servers(
    options: ServeOptions, *, engine: Engine, receiver: Receiver | None
) -> list[_Server]:
    main_app = create_app(
        engine=engine,
        receiver=receiver,
        project_id=DEFAULT_PROJECT_ID,
        with_web="web" in options.roles,
        allowed_hosts=allowed_hosts_for(options.host),
    )
    servers = [_uvicorn(main_app, options.host, options.port)]
    if receiver is not None and options.otlp_http_port and options.otlp_http_port != options.port:
        servers.append(
            _uvicorn(create_otlp_app(receiver=receiver), options.host, options.otlp_http_port)
        )
    return servers


def _uvicorn(app: FastAPI, host: str, port: int) -> _Server:
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        lifespan="off",
        timeout_keep_alive=30,
        timeout_graceful_shutdown=10,
    )
    return _Server(config)


async def _run_http(servers: list[_Server], options: ServeOptions) -> None:
    loop = asyncio.get_running_loop()

    def stop() -> None:
        for server in servers:
            server.should_exit = True

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop)
    tasks = [asyncio.create_task(server.serve()) for server in servers]
    while not all(server.started for server in servers):
        if any(task.done() for task in tasks):
            stop()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise StartupError("listen_failed", "a listener could not start (port in use?)")
        await asyncio.sleep(0.05)
    _announce(options)
    if options.demo:
        _start_demo(options)
    await asyncio.gather(*tasks)


def _announce(options: ServeOptions) -> None:
    if "web" in options.roles:
        print(f"Pathwatch dashboard: http://{options.host}:{options.port}/", flush=True)  # noqa: T201
    listeners = [f"http {options.host}:{options.port}"]
    if "collector" in options.roles and options.otlp_http_port:
        listeners.append(f"otlp-http {options.host}:{options.otlp_http_port}")
    if "collector" in options.roles and options.otlp_grpc_port:
        listeners.append(f"otlp-grpc {options.host}:{options.otlp_grpc_port}")
    logger.info("ready (%s): %s", ", ".join(sorted(options.roles)), ", ".join(listeners))


def _start_demo(options: ServeOptions) -> None:
    from pathwatch.server.demo import run_demo

    port = options.otlp_http_port or options.port
    endpoint = f"http://{options.host}:{port}"
    threading.Thread(target=run_demo, args=(endpoint,), name="pathwatch-demo", daemon=True).start()
