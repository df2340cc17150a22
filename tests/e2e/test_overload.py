"""Past the in-flight limit the receiver answers 429 with Retry-After at once, and takes
exports again as soon as a slot frees."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.builders import export_request, new_trace_id, tool_span
from tests.conftest import RunningServer, start_server, wait_for

PROTOBUF = {"Content-Type": "application/x-protobuf"}


@pytest.fixture
def one_slot_server(database_url: str, tmp_path: Path) -> Iterator[RunningServer]:
    running = start_server(database_url, tmp_path, env={"PATHWATCH_MAX_CONCURRENT_REQUESTS": "1"})
    yield running
    running.stop()


def _body() -> bytes:
    return export_request([tool_span(new_trace_id(), parent=None)]).SerializeToString()


def test_export_past_the_inflight_limit_gets_429_with_retry_after(
    one_slot_server: RunningServer,
) -> None:
    url = f"{one_slot_server.otlp_http_url}/v1/traces"
    body = _body()
    release = threading.Event()
    slow_reply: list[httpx.Response] = []

    def slow_chunks() -> Iterator[bytes]:
        yield body[:10]
        release.wait(timeout=20)
        yield body[10:]

    def send_slowly() -> None:
        slow_reply.append(httpx.post(url, content=slow_chunks(), headers=PROTOBUF, timeout=30))

    sender = threading.Thread(target=send_slowly)
    sender.start()
    wait_for(
        lambda: httpx.get(f"{one_slot_server.base_url}/healthz").json()["exports_in_flight"],
        timeout=10,
        message="the slow export to hold the only slot",
    )
    refused = httpx.post(url, content=_body(), headers=PROTOBUF, timeout=10)
    release.set()
    sender.join(timeout=30)
    accepted = httpx.post(url, content=_body(), headers=PROTOBUF, timeout=10)

    assert refused.status_code == 429
    assert 1 <= int(refused.headers["retry-after"]) <= 5
    assert refused.elapsed.total_seconds() < 2
    assert [r.status_code for r in slow_reply] == [200]
    assert accepted.status_code == 200
