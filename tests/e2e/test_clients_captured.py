"""Request bodies captured from real instrumentation libraries, replayed as their clients sent them.

Each is stored completely, once (sending it twice changes nothing), as one trace with one
root and no missing parent, with its steps typed right whatever the convention.
"""

from __future__ import annotations

import json
from typing import Any

import grpc
import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2_grpc import TraceServiceStub

from tests.conftest import FIXTURES, RunningServer, wait_for
from tests.e2e.ingest_support import (
    assert_whole_trace,
    fetch_trace,
    steps_by_name,
)

CLIENTS = FIXTURES / "clients"
CAPTURES = json.loads((CLIENTS / "index.json").read_text())

GENAI_TYPES = {
    "invoke_agent trip-helper": "agent",
    "chat gpt-4o-mini": "llm",
    "execute_tool get_weather": "tool",
    "execute_tool search_docs": "tool",
}
OPENINFERENCE_TYPES = {
    "trip-helper": "chain",
    "agent": "agent",
    "tools": "chain",
    "tools_condition": "chain",
    "ToolCallingFakeChatModel": "llm",
    "get_weather": "tool",
    "search_docs": "tool",
}
TRACELOOP_TYPES = {
    "trip-helper-session.workflow": "agent",
    "trip-helper.agent": "agent",
    "openai.chat": "llm",
    "get_weather.tool": "tool",
    "search_docs.tool": "tool",
}
CONVENTION_TYPES = {
    "openinference-langgraph": OPENINFERENCE_TYPES,
    "traceloop": TRACELOOP_TYPES,
    "traceloop-grpc": TRACELOOP_TYPES,
}
STORY_TOOLS = ["tool:get_weather", "tool:search_docs", "tool:search_docs", "tool:search_docs"]


def replay(server: RunningServer, capture: dict[str, Any]) -> None:
    """Send one captured body over its own transport; fail unless fully accepted."""
    body = (CLIENTS / capture["file"]).read_bytes()
    if capture["transport"] == "grpc":
        _replay_grpc(server, body, gzip=capture["content_encoding"] == "grpc-compressed")
        return
    reply = httpx.post(
        f"{server.otlp_http_url}{capture['path']}",
        content=body,
        headers=capture["headers"],
        timeout=30,
    )
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"] == capture["content_type"]
    assert reply.content in (b"", b"{}")  # partial_success unset


def _replay_grpc(server: RunningServer, body: bytes, *, gzip: bool) -> None:
    request = ExportTraceServiceRequest.FromString(body)
    compression = grpc.Compression.Gzip if gzip else grpc.Compression.NoCompression
    with grpc.insecure_channel(server.otlp_grpc_target) as channel:
        response = TraceServiceStub(channel).Export(request, timeout=10, compression=compression)
    assert not response.HasField("partial_success")


@pytest.mark.parametrize("capture", CAPTURES, ids=[c["client"] for c in CAPTURES])
def test_captured_export_is_stored_completely_once(
    shared_server: RunningServer, capture: dict[str, Any]
) -> None:
    trace_id = capture["trace_id"]

    replay(shared_server, capture)
    first = assert_whole_trace(shared_server, trace_id, capture["spans"])
    replay(shared_server, capture)
    second = assert_whole_trace(shared_server, trace_id, capture["spans"])

    assert second["spans"] == first["spans"]
    assert second["steps"] == first["steps"]
    assert sorted(s["name"] for s in first["spans"]) == sorted(capture["span_names"])


@pytest.mark.parametrize("capture", CAPTURES, ids=[c["client"] for c in CAPTURES])
def test_captured_export_steps_are_typed_by_convention(
    shared_server: RunningServer, capture: dict[str, Any]
) -> None:
    expected_types = CONVENTION_TYPES.get(capture["client"], GENAI_TYPES)

    replay(shared_server, capture)
    detail = assert_whole_trace(shared_server, capture["trace_id"], capture["spans"])

    grouped = steps_by_name(detail)
    assert {name: {s["type"] for s in steps} for name, steps in grouped.items()} == {
        name: {expected_types[name]} for name in grouped
    }
    assert [label for label in detail["path"] if label.startswith("tool:")] == STORY_TOOLS
    assert [label for label in detail["path"] if label.startswith("llm:")] == [
        "llm:gpt-4o-mini",
        "llm:gpt-4o-mini",
    ]
    tools = [s for s in detail["steps"] if s["type"] == "tool"]
    assert all(t["tool_arguments"] is not None for t in tools)
    assert all(t["tool_result"] is not None for t in tools)
    searches = [t for t in tools if t["tool_name"] == "search_docs"]
    assert len({json.dumps(t["tool_arguments"], sort_keys=True) for t in searches}) == 1
    assert len({t["tool_result"] for t in searches}) == 1


def test_every_captured_client_run_gets_exactly_one_loop_on_search_docs(
    shared_server: RunningServer,
) -> None:
    for capture in CAPTURES:
        replay(shared_server, capture)

    def analysed() -> list[dict[str, Any]]:
        details = [fetch_trace(shared_server, c["trace_id"]) for c in CAPTURES]
        done = [d for d in details if d is not None and d["findings"]]
        return done if len(done) == len(CAPTURES) else []

    details = wait_for(analysed, timeout=60, message="every captured run analysed")

    for detail in details:
        labels = {s["span_id"]: s["label"] for s in detail["steps"]}
        assert [f["kind"] for f in detail["findings"]] == ["loop"], detail["trace"]["trace_id"]
        assert {labels[i] for i in detail["findings"][0]["span_ids"]} == {"tool:search_docs"}
