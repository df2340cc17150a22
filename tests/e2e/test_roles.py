"""Roles split over processes sharing one database: a collector-and-web process and a
worker process do together what one `serve` does."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.conftest import FIXTURES, start_server, wait_for


def test_separate_worker_process_analyses_what_the_collector_stored(
    database_url: str, tmp_path: Path
) -> None:
    front = start_server(
        database_url, tmp_path, extra_args=("--role", "collector,web", "--settle-seconds", "1")
    )
    worker = start_server(
        database_url, tmp_path, extra_args=("--role", "worker", "--settle-seconds", "1")
    )
    try:
        body = (FIXTURES / "clients" / "otel-py-http.pb").read_bytes()
        stored = httpx.post(
            f"{front.otlp_http_url}/v1/traces",
            content=body,
            headers={"Content-Type": "application/x-protobuf"},
        )
        trace_url = f"{front.base_url}/api/v1/traces/a17c21e79b4a96006484110bbdb9fed9"
        detail = wait_for(
            lambda: (d := httpx.get(trace_url).json())["findings"] and d,
            timeout=20,
            message="the worker process to analyse the trace",
        )
        worker_api = httpx.get(f"{worker.base_url}/api/v1/traces")
        with pytest.raises(httpx.ConnectError):  # no OTLP listener without the collector
            httpx.post(
                f"{worker.otlp_http_url}/v1/traces",
                content=body,
                headers={"Content-Type": "application/x-protobuf"},
            )
    finally:
        front.stop()
        worker.stop()

    assert stored.status_code == 200
    assert [f["kind"] for f in detail["findings"]] == ["loop"]
    assert worker_api.status_code == 404
    assert "ready (collector, web)" in front.log()
    assert "ready (worker)" in worker.log()
