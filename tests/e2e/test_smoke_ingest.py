"""OTLP in → rows → API out, through a real `pathwatch serve`."""

from __future__ import annotations

import httpx

from tests.conftest import FIXTURES, RunningServer, wait_for


def test_json_export_is_listed_and_readable(server: RunningServer) -> None:
    body = (FIXTURES / "clients" / "otel-py-http-json.json").read_bytes()

    reply = httpx.post(
        f"{server.otlp_http_url}/v1/traces",
        content=body,
        headers={"Content-Type": "application/json"},
    )

    assert reply.status_code == 200
    assert reply.headers["content-type"] == "application/json"
    assert reply.json() == {}
    listed = httpx.get(f"{server.base_url}/api/v1/traces").json()["traces"]
    assert [t["trace_id"] for t in listed] == ["89d5636135021cef1fda245ae6181900"]
    detail = httpx.get(f"{server.base_url}/api/v1/traces/{listed[0]['trace_id']}").json()
    assert len(detail["spans"]) == 7
    assert detail["path"] == [
        "llm:gpt-4o-mini",
        "tool:get_weather",
        "tool:search_docs",
        "tool:search_docs",
        "tool:search_docs",
        "llm:gpt-4o-mini",
    ]
    assert wait_for(
        lambda: (
            httpx.get(f"{server.base_url}/api/v1/traces").json()["traces"][0]["status"]
            == "complete"
        ),
        message="trace to complete",
    )
