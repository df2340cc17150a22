"""The Python OpenTelemetry SDK exports an agent run to Pathwatch over OTLP/HTTP and gRPC."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcSpanExporter,
)
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as HttpSpanExporter,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from tests.conftest import RunningServer
from tests.e2e.ingest_support import assert_whole_trace, wait_for_spans

MODEL = "gpt-4o-mini"
TOOL_CALLS = (
    ("get_weather", "call_1", {"city": "Paris"}, {"city": "Paris", "sky": "cloudy"}),
    ("search_docs", "call_2", {"query": "umbrella policy"}, {"docs": [], "hits": 0}),
    ("search_docs", "call_3", {"query": "umbrella policy"}, {"docs": [], "hits": 0}),
    ("search_docs", "call_4", {"query": "umbrella policy"}, {"docs": [], "hits": 0}),
)
STORY_SPAN_COUNT = 2 + 1 + len(TOOL_CALLS)  # two chat turns, the agent, the tools
STORY_PATH = [
    f"llm:{MODEL}",
    "tool:get_weather",
    "tool:search_docs",
    "tool:search_docs",
    "tool:search_docs",
    f"llm:{MODEL}",
]


@dataclass(frozen=True)
class EmittedRun:
    trace_id: str
    span_ids: frozenset[str]


def emit_agent_story(exporter: SpanExporter, *, service_name: str) -> EmittedRun:
    """Run the agent story through an SDK TracerProvider and shut it down (flushing).

    Returns the trace id and the ids of every span the SDK ended.
    """
    ended = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(SimpleSpanProcessor(ended))
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=100))
    tracer = provider.get_tracer("pathwatch.tests.agent_story", "1.0.0")

    agent_attributes = {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": "trip-helper",
        "gen_ai.provider.name": "openai",
    }
    with tracer.start_as_current_span("invoke_agent trip-helper", attributes=agent_attributes):
        _chat_turn(tracer, input_tokens=52, output_tokens=61)
        for tool_name, call_id, arguments, result in TOOL_CALLS:
            tool_attributes = {
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": tool_name,
                "gen_ai.tool.call.id": call_id,
                "gen_ai.tool.call.arguments": json.dumps(arguments),
                "gen_ai.tool.call.result": json.dumps(result),
            }
            with tracer.start_as_current_span(
                f"execute_tool {tool_name}", attributes=tool_attributes
            ):
                pass
        _chat_turn(tracer, input_tokens=148, output_tokens=23)

    provider.shutdown()
    finished = ended.get_finished_spans()
    return EmittedRun(
        trace_id=f"{finished[0].context.trace_id:032x}",
        span_ids=frozenset(f"{s.context.span_id:016x}" for s in finished),
    )


def _chat_turn(tracer: Any, *, input_tokens: int, output_tokens: int) -> None:
    attributes = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": MODEL,
        "gen_ai.response.model": MODEL,
        "gen_ai.usage.input_tokens": input_tokens,
        "gen_ai.usage.output_tokens": output_tokens,
    }
    with tracer.start_as_current_span(f"chat {MODEL}", kind=SpanKind.CLIENT, attributes=attributes):
        pass


def assert_story_stored(server: RunningServer, run: EmittedRun) -> None:
    """Every ended span stored once in one rooted trace, with its steps typed right."""
    assert len(run.span_ids) == STORY_SPAN_COUNT
    wait_for_spans(server, run.trace_id, STORY_SPAN_COUNT)

    detail = assert_whole_trace(server, run.trace_id, STORY_SPAN_COUNT)

    assert {s["span_id"] for s in detail["spans"]} == run.span_ids
    assert detail["path"] == STORY_PATH
    steps = {s["span_id"]: s for s in detail["steps"]}
    root = next(s for s in detail["spans"] if s["parent_span_id"] is None)
    assert steps[root["span_id"]]["type"] == "agent"
    assert detail["trace"]["agent_name"] == "trip-helper"
    tools = [s for s in detail["steps"] if s["type"] == "tool"]
    assert [t["tool_name"] for t in tools] == [c[0] for c in TOOL_CALLS]
    assert [t["tool_arguments"] for t in tools] == [c[2] for c in TOOL_CALLS]
    assert [json.loads(t["tool_result"]) for t in tools] == [c[3] for c in TOOL_CALLS]
    chats = [s for s in detail["steps"] if s["type"] == "llm"]
    assert [(c["model"], c["input_tokens"], c["output_tokens"]) for c in chats] == [
        (MODEL, 52, 61),
        (MODEL, 148, 23),
    ]


@pytest.mark.parametrize(
    "compression",
    [Compression.NoCompression, Compression.Gzip],
    ids=["identity", "gzip"],
)
def test_python_sdk_http_protobuf_export_is_stored_once(
    shared_server: RunningServer, compression: Compression
) -> None:
    exporter = HttpSpanExporter(
        endpoint=f"{shared_server.otlp_http_url}/v1/traces",
        compression=compression,
        timeout=10,
    )

    run = emit_agent_story(exporter, service_name=f"py-http-{compression.value}")

    assert_story_stored(shared_server, run)


@pytest.mark.parametrize("compression", [None, "gzip"], ids=["identity", "gzip"])
def test_python_sdk_grpc_export_is_stored_once(
    shared_server: RunningServer, compression: str | None
) -> None:
    from grpc import Compression as GrpcCompression

    exporter = GrpcSpanExporter(
        endpoint=shared_server.otlp_grpc_target,
        insecure=True,
        compression=GrpcCompression.Gzip if compression else None,
        timeout=10,
    )

    run = emit_agent_story(exporter, service_name=f"py-grpc-{compression}")

    assert_story_stored(shared_server, run)


def test_python_sdk_reexport_of_same_spans_changes_nothing(shared_server: RunningServer) -> None:
    recorded = InMemorySpanExporter()
    run = emit_agent_story(recorded, service_name="py-resend")
    spans = recorded.get_finished_spans()
    url = f"{shared_server.otlp_http_url}/v1/traces"

    for _ in range(2):
        exporter = HttpSpanExporter(endpoint=url, timeout=10)
        assert exporter.export(spans).name == "SUCCESS"
        exporter.shutdown()

    assert_story_stored(shared_server, run)
