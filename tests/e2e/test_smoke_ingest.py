"""OTLP in → rows → API out, through a real `pathwatch serve`."""

from __future__ import annotations

import httpx

from tests.builders import export_request, new_trace_id, tool_span
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


def test_spans_starting_in_the_same_millisecond_keep_tree_and_end_order(
    server: RunningServer,
) -> None:
    trace_id = new_trace_id()
    start = 1_700_000_000_000_000_000
    root = tool_span(trace_id, parent=None, tool="root", span_id=b"\xff" * 8, start_ns=start)
    root.end_time_unix_nano = start + 10_000_000
    siblings = []
    for position, tool in enumerate(("first", "second", "third")):
        sibling = tool_span(
            trace_id,
            parent=root.span_id,
            tool=tool,
            start_ns=start,
            span_id=bytes([0xF0 - position]) * 8,
        )
        sibling.end_time_unix_nano = start + (position + 1) * 1_000_000
        siblings.append(sibling)
    body = export_request([*reversed(siblings), root]).SerializeToString()

    reply = httpx.post(
        f"{server.otlp_http_url}/v1/traces",
        content=body,
        headers={"Content-Type": "application/x-protobuf"},
    )
    detail = httpx.get(f"{server.base_url}/api/v1/traces/{trace_id.hex()}").json()

    assert reply.status_code == 200
    assert [s["name"] for s in detail["spans"]] == [
        "execute_tool root",
        "execute_tool first",
        "execute_tool second",
        "execute_tool third",
    ]
