"""Builders of OTLP export requests for tests."""

from __future__ import annotations

import os
import time

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span


def new_trace_id() -> bytes:
    return os.urandom(16)


def new_span_id() -> bytes:
    return os.urandom(8)


def tool_span(
    trace_id: bytes,
    *,
    parent: bytes | None,
    tool: str = "search_docs",
    arguments: str = '{"query": "x"}',
    span_id: bytes | None = None,
    start_ns: int | None = None,
) -> Span:
    start = start_ns or time.time_ns()
    return Span(
        trace_id=trace_id,
        span_id=span_id or new_span_id(),
        parent_span_id=parent or b"",
        name=f"execute_tool {tool}",
        start_time_unix_nano=start,
        end_time_unix_nano=start + 1_000_000,
        attributes=[
            KeyValue(key="gen_ai.operation.name", value=AnyValue(string_value="execute_tool")),
            KeyValue(key="gen_ai.tool.name", value=AnyValue(string_value=tool)),
            KeyValue(key="gen_ai.tool.call.arguments", value=AnyValue(string_value=arguments)),
        ],
    )


def export_request(spans: list[Span], *, service: str = "test-agent") -> ExportTraceServiceRequest:
    resource_spans = ResourceSpans(scope_spans=[ScopeSpans(spans=spans)])
    resource_spans.resource.attributes.append(
        KeyValue(key="service.name", value=AnyValue(string_value=service))
    )
    return ExportTraceServiceRequest(resource_spans=[resource_spans])
