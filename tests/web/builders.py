"""Builders of span records for the web tests."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from pathwatch.server.queries.traces import SpanDetail

MS = 1_000_000  # nanoseconds
T0 = 1_700_000_000_000_000_000
BASE_SPAN = SpanDetail(
    span_id="00000000000000a1",
    parent_span_id=None,
    has_missing_parent=False,
    name="invoke_agent helper",
    kind=1,
    start_time_ns=T0,
    end_time_ns=T0 + 100 * MS,
    duration_ms=100.0,
    status_code=0,
    status_message="",
    attributes={},
    events=[],
    links=[],
    resource={"service.name": "svc"},
    scope={},
    step_type="agent",
    step_label="agent:helper",
    step_name="helper",
    tool_name=None,
    tool_arguments=None,
    tool_result=None,
    model=None,
    input_tokens=None,
    output_tokens=None,
    is_error=False,
    token_logprobs=None,
    depth=0,
)


def make_span(index: int, **changes: Any) -> SpanDetail:
    """A span `index` ms after T0, lasting 10 ms unless `changes` say otherwise."""
    start = T0 + index * MS
    fields: dict[str, Any] = {
        "span_id": f"{index + 1:016x}",
        "parent_span_id": f"{1:016x}" if index else None,
        "start_time_ns": start,
        "end_time_ns": start + 10 * MS,
        "duration_ms": 10.0,
        "depth": 1 if index else 0,
    }
    fields.update(changes)
    return replace(BASE_SPAN, **fields)
