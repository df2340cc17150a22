"""The pytest helper captures SDK spans in memory and asserts Pathwatch's findings."""

from __future__ import annotations

import json

import pytest
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from pathwatch.server.analysis.rules import load_rules
from pathwatch.server.pytest_plugin import (
    SpanCapture,
    assert_no_findings,
    findings_for,
    pathwatch_spans,  # noqa: F401 - the fixture under test
)

RETRIEVE_FIRST = load_rules(
    "rules:\n  - {id: retrieve-first, kind: eventually, match: {type: retrieval}, by: {type: llm}}"
)


def run_agent(*, searches: int, retrieve: bool = True, fail_tool: bool = False) -> None:
    """A small agent instrumented with OTel GenAI attributes through the global tracer."""
    tracer = trace.get_tracer("test-agent")
    with tracer.start_as_current_span(
        "invoke_agent helper",
        attributes={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "helper"},
    ):
        if retrieve:
            with tracer.start_as_current_span(
                "retrieval kb",
                attributes={"gen_ai.operation.name": "retrieval", "gen_ai.data_source.id": "kb"},
            ):
                pass
        with tracer.start_as_current_span(
            "chat gpt-4o",
            attributes={"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o"},
        ):
            pass
        for _ in range(searches):
            with tracer.start_as_current_span(
                "execute_tool search_docs",
                attributes={
                    "gen_ai.operation.name": "execute_tool",
                    "gen_ai.tool.name": "search_docs",
                    "gen_ai.tool.call.arguments": json.dumps({"query": "umbrella"}),
                    "gen_ai.tool.call.result": '{"hits": 0}',
                },
            ) as span:
                if fail_tool:
                    span.set_status(Status(StatusCode.ERROR, "backend down"))


def test_healthy_agent_has_no_findings(pathwatch_spans: SpanCapture) -> None:  # noqa: F811
    run_agent(searches=1)

    assert_no_findings(pathwatch_spans, rules=RETRIEVE_FIRST)
    (record,) = pathwatch_spans.traces()
    assert record.agent_name == "helper"
    assert [s.label for s in record.path] == ["retrieval:kb", "llm:gpt-4o", "tool:search_docs"]


def test_looping_agent_fails_the_assertion(pathwatch_spans: SpanCapture) -> None:  # noqa: F811
    run_agent(searches=3)

    with pytest.raises(AssertionError, match=r"error loop: search_docs called 3 times"):
        assert_no_findings(pathwatch_spans)


def test_rules_are_asserted_on_captured_spans(pathwatch_spans: SpanCapture) -> None:  # noqa: F811
    run_agent(searches=1, retrieve=False)

    (findings,) = findings_for(pathwatch_spans, rules=RETRIEVE_FIRST).values()

    assert [(f.kind, f.rule_id) for f in findings] == [("eventually", "retrieve-first")]


def test_severity_threshold_lets_warnings_pass(pathwatch_spans: SpanCapture) -> None:  # noqa: F811
    run_agent(searches=1, fail_tool=True)

    assert_no_findings(pathwatch_spans, severity="error")
    with pytest.raises(AssertionError, match="error_step"):
        assert_no_findings(pathwatch_spans, severity="warning")


def test_capture_starts_empty_for_each_test(pathwatch_spans: SpanCapture) -> None:  # noqa: F811
    assert pathwatch_spans.finished_spans() == ()
    assert findings_for(pathwatch_spans) == {}
