"""Rules: each kind over finite traces, matchers, and the rules file's errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from pathwatch.server.analysis.findings import Finding
from pathwatch.server.analysis.records import StepRecord
from pathwatch.server.analysis.rules import RULE_KINDS, RulesFileError, evaluate_rules, load_rules
from tests.analysis.builders import step, trace_of

EXAMPLES = Path(__file__).parents[2] / "examples" / "rules"


def violations(rule_yaml: str, *steps: StepRecord) -> list[Finding]:
    rules = load_rules("rules:\n  - " + rule_yaml.strip().replace("\n", "\n    "))
    return evaluate_rules(rules, trace_of(*steps))


LOOKUP = step("get_reservation_details", args={"reservation_id": "R1"}, result="{}")
FAILED_LOOKUP = step("get_reservation_details", args={"reservation_id": "R1"}, status="error")
OTHER_LOOKUP = step("get_reservation_details", args={"reservation_id": "R2"}, result="{}")
CANCEL = step("cancel_reservation", args={"reservation_id": "R1"}, result="{}")
TURN = step("gpt-4o", type="llm")
RETRIEVE = step("kb", type="retrieval")

NEVER = "{id: r, kind: never, match: {type: tool, name: 'cancel_*'}}"
EVENTUALLY = "{id: r, kind: eventually, match: {type: retrieval}}"
EVENTUALLY_BY = "{id: r, kind: eventually, match: {type: retrieval}, by: {type: llm}}"
BEFORE = """
id: r
kind: before
match: {type: tool, name: cancel_reservation}
required: {type: tool, name: get_reservation_details, status: ok}
same_args: [reservation_id]
"""
RESPONSE = "{id: r, kind: response, match: {name: get_reservation_details}, then: {type: llm}}"
MAX_REPEATS = "{id: r, kind: max_repeats, match: {type: llm}, max: 2}"
MAX_STEPS = "{id: r, kind: max_steps, max: 2}"
ARGS_SCHEMA = """
id: r
kind: args_schema
match: {name: cancel_reservation}
schema: {type: object, required: [reservation_id, reason]}
"""


@pytest.mark.parametrize(
    ("rule", "steps", "pinned"),
    [
        pytest.param(NEVER, [LOOKUP], [], id="never-holds"),
        pytest.param(NEVER, [LOOKUP, CANCEL], [[CANCEL]], id="never-violated"),
        pytest.param(EVENTUALLY, [RETRIEVE, TURN], [], id="eventually-holds"),
        pytest.param(EVENTUALLY, [TURN, LOOKUP], [[LOOKUP]], id="eventually-missing-at-end"),
        pytest.param(EVENTUALLY_BY, [RETRIEVE, TURN], [], id="eventually-by-holds"),
        pytest.param(EVENTUALLY_BY, [TURN, RETRIEVE], [[TURN, RETRIEVE]], id="eventually-too-late"),
        pytest.param(BEFORE, [LOOKUP, CANCEL], [], id="before-holds"),
        pytest.param(BEFORE, [CANCEL, LOOKUP], [[CANCEL, LOOKUP]], id="before-came-later"),
        pytest.param(BEFORE, [FAILED_LOOKUP, CANCEL], [[CANCEL]], id="before-failed-lookup"),
        pytest.param(BEFORE, [OTHER_LOOKUP, CANCEL], [[CANCEL]], id="before-other-reservation"),
        pytest.param(BEFORE, [TURN, CANCEL], [[CANCEL, TURN]], id="before-pins-deciding-turn"),
        pytest.param(RESPONSE, [LOOKUP, TURN], [], id="response-holds"),
        pytest.param(RESPONSE, [TURN, LOOKUP], [[LOOKUP]], id="response-unanswered"),
        pytest.param(MAX_REPEATS, [TURN, TURN], [], id="max-repeats-holds"),
        pytest.param(MAX_REPEATS, [TURN, LOOKUP, TURN, TURN], [[TURN]], id="max-repeats-over"),
        pytest.param(MAX_STEPS, [TURN, LOOKUP], [], id="max-steps-holds"),
        pytest.param(MAX_STEPS, [TURN, LOOKUP, CANCEL], [[CANCEL]], id="max-steps-over"),
        pytest.param(ARGS_SCHEMA, [LOOKUP], [], id="args-schema-other-tool"),
        pytest.param(ARGS_SCHEMA, [CANCEL], [[CANCEL]], id="args-schema-violated"),
    ],
)
def test_rule_kind_on_finite_trace(
    rule: str, steps: list[StepRecord], pinned: list[list[StepRecord]]
) -> None:
    found = violations(rule, *steps)

    assert [list(f.span_ids) for f in found] == [[s.span_id for s in p] for p in pinned]
    assert all(f.rule_id == "r" and f.rule_version == 1 for f in found)


def test_rule_kinds_are_the_finding_kinds_except_stall_after() -> None:
    slow = step("crawl", args={}, start_ms=100, end_ms=40_100)
    rule = "{id: r, kind: stall_after, seconds: 30, severity: warning}"

    (finding,) = violations(rule, slow)

    assert (finding.kind, finding.severity, finding.span_ids) == (
        "stall",
        "warning",
        (slow.span_id,),
    )


def test_stall_after_flags_a_gap_but_not_time_waiting_for_a_person() -> None:
    asked_user = step("gpt-4o", type="llm", start_ms=100, end_ms=200)
    after_user = step("gpt-4o", type="llm", start_ms=90_000, end_ms=90_100, requested=["c1"])
    tool = step("lookup", args={}, start_ms=90_200, end_ms=90_300, call_id="c1")
    stuck_next = step("gpt-4o", type="llm", start_ms=200_000, end_ms=200_100)
    rule = "{id: r, kind: stall_after, seconds: 30}"

    found = violations(rule, asked_user, after_user, tool, stuck_next)

    assert [f.span_ids for f in found] == [(tool.span_id, stuck_next.span_id)]


def test_max_duration_of_steps_and_of_the_run() -> None:
    slow = step("crawl", args={}, start_ms=100, end_ms=5_100)
    quick = step("lookup", args={}, start_ms=5_200, end_ms=5_300)

    per_step = violations(
        "{id: r, kind: max_duration, match: {type: tool}, seconds: 2}", slow, quick
    )
    whole = violations("{id: r, kind: max_duration, seconds: 5.15}", slow, quick)

    assert [f.span_ids for f in per_step] == [(slow.span_id,)]
    assert [f.span_ids for f in whole] == [(quick.span_id,)]


@pytest.mark.parametrize(
    ("matcher", "matches"),
    [
        ("{name: lookup_order}", True),
        ("{name: 'lookup_*'}", True),
        ("{name: 'tool:lookup_*'}", True),
        ("{name: [refund, lookup_order]}", True),
        ("{name: Lookup_order}", False),
        ("{type: [llm, tool]}", True),
        ("{type: llm}", False),
        ("{attributes: {gen_ai.tool.type: function}}", True),
        ("{attributes: {gen_ai.tool.type: extension}}", False),
        ("{status: ok}", True),
        ("{status: error}", False),
        ("{type: tool, name: lookup_order, status: ok}", True),
    ],
)
def test_matcher_selects_steps(matcher: str, matches: bool) -> None:
    call = step("lookup_order", args={}, attributes={"gen_ai.tool.type": "function"})

    found = violations(f"{{id: r, kind: never, match: {matcher}}}", call)

    assert bool(found) is matches


class TestRulesFile:
    def test_example_airline_rules_load(self) -> None:
        rules = load_rules((EXAMPLES / "airline.yaml").read_text())

        assert [rule.kind for rule in rules.rules] == ["before", "before"]
        assert rules.rules[0].same_args == ("reservation_id",)

    @pytest.mark.parametrize(
        ("text", "line", "path", "words"),
        [
            ("rules:\n  - id: a\n    kind: sometimes\n", 3, "$.rules[0].kind", "is not one of"),
            ("rules:\n  - id: a\n    kind: before\n    match: {type: tool}\n", 2,
             "$.rules[0]", "'required' is a required property"),
            ("rules:\n  - id: a\n    kind: never\n    match: {type: tool}\n    max: 3\n", 2,
             "$.rules[0]", "'max' is not one of"),
            ("rules:\n  - id: a\n    kind: never\n    match:\n      colour: red\n", 5,
             "$.rules[0].match", "'colour' was unexpected"),
            ("rules:\n  - id: a\n    kind: max_steps\n    max: many\n", 4,
             "$.rules[0].max", "is not of type 'integer'"),
            ("rules:\n  - id: a\n    kind: never\n    match: {type: tool}\n"
             "  - id: a\n    kind: never\n    match: {type: llm}\n", 5,
             "$.rules[1].id", "duplicate id"),
            ("rules:\n  - id: a\n    kind: args_schema\n    match: {type: tool}\n"
             "    schema: {type: thing}\n", 5, "$.rules[0].schema", "not a valid JSON Schema"),
            ("rules:\n  - id: a\n    kind: [never\n", 4, "$", ""),
            ("", 1, "$", "is not of type 'object'"),
        ],
    )  # fmt: skip
    def test_rules_file_error_names_line_and_path(
        self, text: str, line: int, path: str, words: str
    ) -> None:
        with pytest.raises(RulesFileError) as raised:
            load_rules(text, source="agent.yaml")

        (problem,) = raised.value.problems
        assert (problem.line, problem.path) == (line, path)
        assert words in problem.message
        assert f"agent.yaml:{line}:" in str(raised.value)
        assert raised.value.http_status == 422

    def test_every_kind_has_a_documented_example(self) -> None:
        from pathwatch.server.analysis import rules as module

        for kind in RULE_KINDS:
            doc = getattr(module, f"check_{kind}").__doc__
            assert "Example" in doc, kind

    def test_stall_timeout_comes_from_the_shortest_stall_after(self) -> None:
        text = "rules:\n" + "".join(
            f"  - {{id: s{n}, kind: stall_after, seconds: {n}}}\n" for n in (90, 45)
        )

        assert load_rules(text).stall_timeout_seconds == 45
