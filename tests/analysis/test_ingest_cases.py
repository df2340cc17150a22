"""Ingest cases from other backends' bug reports, as the analysis sees them."""

from __future__ import annotations

from pathwatch.server.analysis.analyse import analyse_trace
from pathwatch.server.analysis.rules import load_rules
from tests.analysis.builders import FIXTURES, traces_in

INGEST = FIXTURES / "ingest"


def test_pw21_same_call_in_three_conventions_is_a_loop_on_lookup_order() -> None:
    (trace,) = traces_in(INGEST / "PW-21" / "01.json")

    findings = analyse_trace(trace)

    assert [f.kind for f in findings] == ["loop"]
    tools = [s for s in trace.steps if s.type == "tool"]
    assert {s.name for s in tools} == {"lookup_order"}
    assert set(findings[0].span_ids) == {s.span_id for s in tools}
    assert len(findings[0].span_ids) == 3


def test_pw04_duplicate_deliveries_are_not_repeated_calls() -> None:
    (trace,) = traces_in(*(INGEST / "PW-04" / f"0{n}.json" for n in (1, 2, 3)))

    findings = analyse_trace(trace)

    assert findings == []
    assert len(trace.steps) == 8
    assert [s.name for s in trace.steps if s.type == "tool"] == [
        "lookup_order",
        "issue_refund",
        "send_email",
    ]


ORDER_RULES = """
rules:
  - id: model-turn-before-lookup
    kind: before
    match: {type: tool, name: lookup_order}
    required: {type: llm}
  - id: order-looked-up
    kind: eventually
    match: {type: tool, name: lookup_order, status: ok}
  - id: answer-after-lookup
    kind: response
    match: {type: tool, name: lookup_order}
    then: {type: llm}
"""


def test_pw01_orphan_span_raises_no_ordering_or_missing_step_finding() -> None:
    (trace,) = traces_in(INGEST / "PW-01" / "01.json")

    findings = analyse_trace(trace, rules=load_rules(ORDER_RULES))

    assert findings == []
    assert trace.status == "complete"
    # The case's expected path: chat -> execute_tool lookup_order -> chat, in start order.
    assert [s.label for s in trace.path] == [
        "llm:gpt-4o-mini",
        "tool:lookup_order",
        "llm:gpt-4o-mini",
    ]
    orphan = next(s for s in trace.steps if s.span_id == "fde1ab835126cc64")
    assert orphan.parent_span_id == "3c21ed1e10749388"
