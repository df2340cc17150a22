"""Built-in detectors and causal ordering, table-driven over built records."""

from __future__ import annotations

import pytest

from pathwatch.server.analysis.analyse import analyse_trace
from pathwatch.server.analysis.detectors import DetectorSettings
from pathwatch.server.analysis.records import StepRecord, causal_order
from tests.analysis.builders import root, step, trace_of

SEARCH = {"query": "umbrella policy", "limit": 5}
DEFINITIONS = [
    {
        "type": "function",
        "function": {
            "name": "search_docs",
            "parameters": {
                "type": "object",
                "properties": {"query": {"type": "string"}, "limit": {"type": "integer"}},
                "required": ["query"],
            },
        },
    }
]


def kinds(
    *steps: StepRecord,
    history: list[int] | None = None,
    settings: DetectorSettings | None = None,
) -> list[str]:
    findings = analyse_trace(trace_of(*steps), history=history, settings=settings)
    return [finding.kind for finding in findings]


class TestLoop:
    @pytest.mark.parametrize(
        ("calls", "expected"),
        [
            pytest.param([("search_docs", SEARCH, "none")] * 3, ["loop"], id="three-identical"),
            pytest.param([("search_docs", SEARCH, "none")] * 2, [], id="two-is-not-a-loop"),
            pytest.param(
                [("search_docs", SEARCH, "none"), ("search_docs", SEARCH, "one"),
                 ("search_docs", SEARCH, "two")],
                [],
                id="different-results-are-progress",
            ),
            pytest.param(
                [("search_docs", SEARCH, '{"hits": 0}'),
                 ("search_docs", '{"limit":5,"query":"umbrella policy"}', '{"hits":0}'),
                 ("search_docs", '{ "query" : "umbrella policy",\n "limit": 5 }', '{"hits": 0}')],
                ["loop"],
                id="key-order-and-whitespace-ignored",
            ),
            pytest.param(
                [("search_docs", SEARCH, "none"), ("search_docs", {"query": "x"}, "none"),
                 ("search_docs", SEARCH, "none")],
                [],
                id="different-arguments",
            ),
            pytest.param(
                [("edit", {"line": 1}, "ok"), ("run", {}, "fail 1"),
                 ("edit", {"line": 1}, "ok"), ("run", {}, "fail 2"),
                 ("edit", {"line": 1}, "ok"), ("run", {}, "pass")],
                ["loop"],
                id="edit-then-run-only-the-edit-repeats",
            ),
        ],
    )  # fmt: skip
    def test_loop_needs_identical_calls_with_identical_results(
        self, calls: list[tuple[str, object, str]], expected: list[str]
    ) -> None:
        steps = [step(name, args=args, result=result) for name, args, result in calls]

        assert kinds(*steps) == expected

    def test_loop_ignores_reused_tool_call_ids(self) -> None:
        steps = [
            step("search_docs", args={"query": q}, result="r", call_id="call_1")
            for q in ("a", "b", "c")
        ]

        assert kinds(*steps) == []

    def test_cycle_of_two_calls_repeated_is_one_loop_finding(self) -> None:
        pair = [("search", {"q": "x"}, "nothing"), ("open", {"path": "a"}, "empty")]
        steps = [step(name, args=args, result=result) for name, args, result in pair * 3]

        (finding,) = analyse_trace(trace_of(*steps))

        assert finding.kind == "loop"
        assert finding.span_ids == tuple(s.span_id for s in steps)
        assert "search → open" in finding.message

    def test_loop_threshold_is_configurable(self) -> None:
        steps = [step("search_docs", args=SEARCH, result="none") for _ in range(3)]

        assert kinds(*steps, settings=DetectorSettings(loop_min_repeats=4)) == []


class TestStall:
    def test_stalled_trace_is_pinned_on_the_step_that_never_ended(self) -> None:
        hung = step("fetch_page", args={}, end_ms=None)
        done = step("search_docs", args={}, result="r")
        trace = trace_of(done, hung, status="stalled", with_root=False)

        (finding,) = analyse_trace(trace)

        assert finding.kind == "stall"
        assert finding.span_ids == (hung.span_id, done.span_id)

    def test_complete_trace_has_no_stall(self) -> None:
        assert kinds(step("search_docs", args={}, result="r")) == []


class TestErrorStep:
    @pytest.mark.parametrize(
        ("status", "result", "expected"),
        [
            ("error", "boom", ["error_step"]),
            ("unset", "Error: flight HAT030 not available", ["error_step"]),
            ("unset", '{"error": "not found"}', ["error_step"]),
            ("unset", '{"isError": true, "content": []}', ["error_step"]),
            ("ok", '{"error": null, "rows": 2}', []),
            ("unset", "No errors found", []),
            ("unset", "", []),
        ],
    )
    def test_error_step_from_status_or_result(
        self, status: str, result: str, expected: list[str]
    ) -> None:
        assert kinds(step("lookup", args={}, result=result, status=status)) == expected

    def test_wrapper_failing_because_of_its_step_is_not_reported_twice(self) -> None:
        chain = step("tools", type="chain", status="error", start_ms=50, end_ms=900)
        failed = step("lookup", args={}, status="error", parent=chain.span_id)

        findings = analyse_trace(trace_of(chain, failed))

        assert [f.span_ids for f in findings] == [(failed.span_id,)]


class TestToolDefinitions:
    @pytest.mark.parametrize(
        ("tool", "args", "expected"),
        [
            ("search_docs", SEARCH, []),
            ("search_docs", {"limit": 5}, ["invalid_args"]),
            ("search_docs", {"query": "x", "limit": "five"}, ["invalid_args"]),
            ("search_docs", '{"query": ', ["invalid_args"]),
            ("delete_everything", {}, ["unknown_tool"]),
        ],
    )
    def test_tool_call_checked_against_offered_definitions(
        self, tool: str, args: object, expected: list[str]
    ) -> None:
        turn = step("gpt-4o", type="llm", definitions=DEFINITIONS)

        assert kinds(turn, step(tool, args=args, result="r")) == expected

    def test_without_definitions_nothing_is_checked(self) -> None:
        assert kinds(step("gpt-4o", type="llm"), step("anything", args=[1], result="r")) == []

    def test_genai_flat_definitions_are_read(self) -> None:
        flat = [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}]
        turn = step("gpt-4o", type="llm", definitions=flat)

        assert kinds(turn, step("get_time", args={}, result="r")) == ["unknown_tool"]


class TestRunaway:
    HISTORY = [10, 11, 12, 9, 10] * 4

    @pytest.mark.parametrize(
        ("length", "history", "expected"),
        [
            (12, HISTORY, []),
            (40, HISTORY, ["runaway"]),
            (40, HISTORY[:10], []),
        ],
    )
    def test_runaway_against_the_agents_history(
        self, length: int, history: list[int], expected: list[str]
    ) -> None:
        steps = [step("gpt-4o", type="llm") for _ in range(length)]

        assert kinds(*steps, history=history) == expected

    def test_runaway_is_pinned_on_the_first_step_past_the_threshold(self) -> None:
        steps = [step("gpt-4o", type="llm") for _ in range(40)]

        (finding,) = analyse_trace(trace_of(*steps), history=self.HISTORY)

        # Twice the median (10) is above the 95th percentile (12): the 21st step is past it.
        assert finding.span_ids == (steps[20].span_id,)
        assert "runaway above 20" in finding.message


class TestCausalOrder:
    def test_child_never_precedes_its_parent_despite_clock_skew(self) -> None:
        parent = step("tools", type="chain", start_ms=1_000, end_ms=2_000)
        child = step("lookup", args={}, parent=parent.span_id, start_ms=400)

        ordered = causal_order([child, root(), parent])

        assert [s.span_id for s in ordered][1:] == [parent.span_id, child.span_id]

    def test_tool_call_follows_the_turn_that_requested_it(self) -> None:
        first = step("gpt-4o", type="llm", start_ms=1_000, requested=["call_1"])
        # The tool's host runs about a second slow.
        tool = step("lookup", args={}, call_id="call_1", start_ms=100)
        second = step("gpt-4o", type="llm", start_ms=1_200, answered=["call_1"])

        ordered = causal_order([tool, second, first, root()])

        assert [s.span_id for s in ordered][1:] == [first.span_id, tool.span_id, second.span_id]

    def test_tool_call_precedes_the_turn_that_received_its_result(self) -> None:
        first = step("gpt-4o", type="llm", start_ms=1_000, requested=["call_1"])
        second = step("gpt-4o", type="llm", start_ms=1_200, answered=["call_1"])
        tool = step("lookup", args={}, call_id="call_1", start_ms=3_000)  # host runs fast

        ordered = causal_order([second, tool, first, root()])

        assert [s.span_id for s in ordered][1:] == [first.span_id, tool.span_id, second.span_id]

    def test_reused_call_ids_match_requests_in_turn(self) -> None:
        turns = [
            step("gpt-4o", type="llm", start_ms=t, requested=["call_1"], answered=["call_1"])
            for t in (1_000, 2_000)
        ]
        tools = [step("lookup", args={"n": n}, call_id="call_1", start_ms=t) for n, t in
                 ((1, 500), (2, 1_500))]  # fmt: skip

        ordered = causal_order([*tools, *turns, root()])

        expected = [turns[0], tools[0], turns[1], tools[1]]
        assert [s.span_id for s in ordered][1:] == [s.span_id for s in expected]
