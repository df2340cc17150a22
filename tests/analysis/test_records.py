"""Decoded spans become trace records: deduplicated, start markers replaced, agent found."""

from __future__ import annotations

from pathwatch.collector.decode import SpanRecord
from pathwatch.server.analysis.analyse import analyse_trace
from pathwatch.server.offline import traces_from_spans

TRACE = bytes.fromhex("5b8efff798038103d269b633813fc60c")
ROOT = bytes.fromhex("00f067aa0ba902b7")
TOOL = bytes.fromhex("eee19b7ec3c1b174")


def span(
    span_id: bytes, parent: bytes | None, *, end: int | None, **attributes: object
) -> SpanRecord:
    return SpanRecord(
        trace_id=TRACE, span_id=span_id, parent_span_id=parent, name="span", kind=1,
        start_time_ns=1_000 if parent else 0, end_time_ns=end, status_code=0,
        status_message="", trace_state="", flags=0, attributes=dict(attributes), events=[],
        links=[], resource={"service.name": "svc", "service.version": "1.2"},
        scope={"name": "", "version": ""}, dropped_counts={},
    )  # fmt: skip


AGENT = {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "helper"}
TOOL_ATTRIBUTES = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "fetch"}
MARKER = {**TOOL_ATTRIBUTES, "pathwatch.span_start": True}


def test_ended_span_replaces_its_start_marker_and_duplicates_count_once() -> None:
    spans = [
        span(TOOL, ROOT, end=None, **MARKER),
        span(TOOL, ROOT, end=2_000, **TOOL_ATTRIBUTES),
        span(TOOL, ROOT, end=None, **MARKER),
        span(ROOT, None, end=3_000, **AGENT),
    ]

    (trace,) = traces_from_spans(spans)

    assert [(s.span_id, s.end_time_ns) for s in trace.steps] == [
        (ROOT.hex(), 3_000),
        (TOOL.hex(), 2_000),
    ]
    assert (trace.status, trace.agent_name, trace.agent_version) == ("complete", "helper", "1.2")


def test_trace_without_root_is_stalled_and_pinned_on_the_hung_step() -> None:
    (trace,) = traces_from_spans([span(TOOL, ROOT, end=None, **MARKER)])

    (finding,) = analyse_trace(trace)

    assert (trace.status, trace.has_root) == ("stalled", False)
    assert (finding.kind, finding.span_ids) == ("stall", (TOOL.hex(),))
