"""An acknowledged span is never lost: SIGKILL the server mid-stream, restart, count."""

from __future__ import annotations

import random
import signal
import threading
import time
from pathlib import Path

import httpx
import psycopg

from pathwatch.server.db import libpq_url
from tests.builders import export_request, new_trace_id, tool_span
from tests.conftest import start_server

SENDERS = 4
SPANS_PER_REQUEST = 100
MAX_REQUESTS_PER_SENDER = 400


def _send_until_refused(url: str, acked: list[bytes], stop: threading.Event, seed: int) -> None:
    rng = random.Random(seed)
    with httpx.Client(timeout=5) as client:
        for _ in range(MAX_REQUESTS_PER_SENDER):
            if stop.is_set():
                return
            trace_id = new_trace_id()
            spans = [
                tool_span(trace_id, parent=None, arguments=f'{{"n": {rng.random()}}}')
                for i in range(SPANS_PER_REQUEST)
            ]
            body = export_request(spans).SerializeToString()
            try:
                reply = client.post(
                    url, content=body, headers={"Content-Type": "application/x-protobuf"}
                )
            except httpx.TransportError:
                return
            if reply.status_code == 200:
                acked.extend(span.span_id for span in spans)


def test_sigkill_mid_stream_loses_no_acknowledged_span(database_url: str, tmp_path: Path) -> None:
    server = start_server(database_url, tmp_path)
    acked: list[bytes] = []
    stop = threading.Event()
    senders = [
        threading.Thread(
            target=_send_until_refused,
            args=(f"{server.otlp_http_url}/v1/traces", acked, stop, seed),
        )
        for seed in range(SENDERS)
    ]
    for sender in senders:
        sender.start()
    deadline = time.monotonic() + 30
    while len(acked) < 20 * SPANS_PER_REQUEST and time.monotonic() < deadline:
        time.sleep(0.05)

    server.process.send_signal(signal.SIGKILL)
    server.process.wait(timeout=10)
    stop.set()
    for sender in senders:
        sender.join(timeout=30)
    restarted = start_server(database_url, tmp_path)
    try:
        with psycopg.connect(libpq_url(database_url)) as connection:
            stored = {row[0] for row in connection.execute("SELECT span_id FROM spans")}
            duplicates = connection.execute(
                "SELECT count(*) - count(DISTINCT (trace_id, span_id)) FROM spans"
            ).fetchone()
    finally:
        restarted.stop()

    assert len(acked) >= 20 * SPANS_PER_REQUEST, "the load did not run before the kill"
    assert set(acked) <= stored
    assert duplicates == (0,)
