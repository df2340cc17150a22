"""normalise: span records → steps, for each convention (table-driven, no I/O)."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from pathwatch.collector.decode import SpanRecord
from pathwatch.collector.normalise import normalise_span
from pathwatch.server.steps import WRAPPER_TYPES, parse_json_value

BASE_SPAN = SpanRecord(
    trace_id=b"\x01" * 16,
    span_id=b"\x02" * 8,
    parent_span_id=None,
    name="span",
    kind=1,
    start_time_ns=1,
    end_time_ns=2,
    status_code=0,
    status_message="",
    trace_state="",
    flags=0,
    attributes={},
    events=[],
    links=[],
    resource={"service.name": "svc"},
    scope={},
    dropped_counts={},
)


def span(name: str, attributes: dict[str, Any], **fields: Any) -> SpanRecord:
    return replace(BASE_SPAN, name=name, attributes=attributes, **fields)


@pytest.mark.parametrize(
    ("name", "attributes", "step_type", "label"),
    [
        ("invoke_agent a", {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "a"},
         "agent", "agent:a"),
        ("chat m", {"gen_ai.operation.name": "chat", "gen_ai.request.model": "m"}, "llm", "llm:m"),
        ("execute_tool t", {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "t"},
         "tool", "tool:t"),
        ("t", {"openinference.span.kind": "TOOL", "tool.name": "t"}, "tool", "tool:t"),
        ("t", {"openinference.span.kind": "tool", "tool.name": "t"}, "tool", "tool:t"),
        ("g", {"openinference.span.kind": "GUARDRAIL"}, "guardrail", "guardrail:g"),
        ("t.tool", {"traceloop.span.kind": "tool", "traceloop.entity.name": "t"}, "tool",
         "tool:t"),
        ("w.workflow", {"traceloop.span.kind": "workflow", "traceloop.entity.name": "w"},
         "agent", "agent:w"),
        ("openai.chat", {"llm.request.type": "chat", "gen_ai.request.model": "m"}, "llm",
         "llm:m"),
        ("GET /orders", {"http.request.method": "GET"}, "span", "span:GET /orders"),
        ("x", {"gen_ai.operation.name": "summon_helper", "gen_ai.request.model": "m"}, "llm",
         "llm:m"),
        # PW-17: a role GenAI has no operation for is more specific than execute_tool.
        ("execute_tool moderate",
         {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "moderate",
          "openinference.span.kind": "GUARDRAIL"},
         "guardrail", "guardrail:moderate"),
        ("evaluate",
         {"gen_ai.operation.name": "chat", "gen_ai.request.model": "m",
          "openinference.span.kind": "EVALUATOR"},
         "evaluator", "evaluator:evaluate"),
        # An OpenInference kind GenAI covers does not override the GenAI operation.
        ("chat m",
         {"gen_ai.operation.name": "chat", "gen_ai.request.model": "m",
          "openinference.span.kind": "OPENINFERENCESPANKINDVALUES.CHAIN"},
         "llm", "llm:m"),
    ],
)  # fmt: skip
def test_normalise_span_types_each_convention(
    name: str, attributes: dict[str, Any], step_type: str, label: str
) -> None:
    step = normalise_span(span(name, attributes))

    assert (step.type, step.label) == (step_type, label)


@pytest.mark.parametrize(
    ("step_type", "on_path"),
    [("llm", True), ("tool", True), ("retrieval", True), ("guardrail", True),
     ("agent", False), ("chain", False), ("span", False)],
)  # fmt: skip
def test_wrapper_types_leave_wrappers_and_plain_spans_off_the_path(
    step_type: str, on_path: bool
) -> None:
    assert (step_type not in WRAPPER_TYPES) is on_path


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ("", ""),
        ("   ", "   "),
        ("\n", "\n"),
        ('{"a": 1}', {"a": 1}),
        ("[1, 2]", [1, 2]),
        ("42", 42),
        ("-1.5", -1.5),
        ("true", True),
        ("null", None),
        ("plain text", "plain text"),
        ("12 apples", "12 apples"),
        ("{'a': 1}", {"a": 1}),
        ("{not json", "{not json"),
        (7, 7),
        (None, None),
    ],
)
def test_parse_json_value_reads_json_and_keeps_other_text(value: Any, parsed: Any) -> None:
    assert parse_json_value(value) == parsed


@pytest.mark.parametrize(
    ("attributes", "arguments", "result"),
    [
        ({"gen_ai.tool.call.arguments": "", "gen_ai.tool.call.result": ""}, "", ""),
        ({"gen_ai.tool.call.arguments": " ", "gen_ai.tool.call.result": " "}, " ", " "),
        ({"gen_ai.tool.call.arguments": {"a": [1]}, "gen_ai.tool.call.result": {"ok": True}},
         {"a": [1]}, '{"ok":true}'),
        ({"input.value": "Paris", "output.value": "18C"}, "Paris", "18C"),
        ({"traceloop.entity.input": '{"args": [], "kwargs": {"q": "x"}}',
          "traceloop.entity.output": '{"hits": 0}'}, {"q": "x"}, '{"hits": 0}'),
    ],
)  # fmt: skip
def test_normalise_span_reads_tool_input_and_output(
    attributes: dict[str, Any], arguments: Any, result: str
) -> None:
    tool = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "t", **attributes}

    step = normalise_span(span("execute_tool t", tool))

    assert (step.tool_arguments, step.tool_result) == (arguments, result)


@pytest.mark.parametrize(
    ("status_code", "is_error"),
    [(0, False), (1, False), (2, True), (7, False)],
)
def test_normalise_span_counts_only_status_error_as_error(status_code: int, is_error: bool) -> None:
    step = normalise_span(span("x", {}, status_code=status_code))

    assert step.is_error is is_error


@pytest.mark.parametrize(
    ("resource", "service_name"),
    [({}, "unknown_service"), ({"service.name": ""}, "unknown_service"),
     ({"service.name": 5}, "unknown_service"), ({"service.name": "svc"}, "svc")],
)  # fmt: skip
def test_normalise_span_defaults_service_name(resource: dict[str, Any], service_name: str) -> None:
    assert normalise_span(span("x", {}, resource=resource)).service_name == service_name


def _openinference_span(attributes: dict[str, object]) -> SpanRecord:
    return SpanRecord(
        trace_id=b"\x01" * 16, span_id=b"\x02" * 8, parent_span_id=None, name="span", kind=1,
        start_time_ns=1, end_time_ns=2, status_code=0, status_message="", trace_state="",
        flags=0, attributes=attributes, events=[], links=[], resource={}, scope={},
        dropped_counts={},
    )  # fmt: skip


def test_openinference_tool_parameters_are_the_tools_schema_not_the_calls_arguments() -> None:
    schema = '{"type": "object", "properties": {"q": {"type": "string"}}}'
    span = _openinference_span(
        {
            "openinference.span.kind": "TOOL",
            "tool.name": "search",
            "tool.parameters": schema,
            "input.value": '{"q": "x"}',
        }
    )

    step = normalise_span(span)

    assert step.tool_arguments == {"q": "x"}
    assert step.tool_definitions == [{"name": "search", "parameters": json.loads(schema)}]


def test_openinference_flattened_llm_tools_become_the_offered_definitions() -> None:
    first = {"type": "function", "function": {"name": "search", "parameters": {}}}
    second = {"type": "function", "function": {"name": "order", "parameters": {}}}
    span = _openinference_span(
        {
            "openinference.span.kind": "LLM",
            "llm.model_name": "gpt-4o",
            "llm.tools.1.tool.json_schema": json.dumps(second),
            "llm.tools.0.tool.json_schema": json.dumps(first),
        }
    )

    assert normalise_span(span).tool_definitions == [first, second]
