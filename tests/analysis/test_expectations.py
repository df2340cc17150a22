"""Skipped usual steps, learned from an agent's recent runs."""

from __future__ import annotations

import pytest

from pathwatch.server.analysis.expectations import ExpectationSettings, UsualSteps
from tests.analysis.builders import step, trace_of

RETRIEVE_THEN_ANSWER = ["retrieval:kb", "llm:gpt-4o"]


def _answer_only() -> tuple[object, str]:
    answer = step("gpt-4o", type="llm", start_ms=10)
    return trace_of(answer), answer.span_id


@pytest.mark.parametrize(
    ("past", "expected_share"),
    [
        ([RETRIEVE_THEN_ANSWER] * 8, "100% of 8"),
        ([RETRIEVE_THEN_ANSWER] * 9 + [["llm:gpt-4o"]], "90% of 10"),
    ],
)
def test_usual_steps_report_a_missing_usual_step_before_its_usual_successor(
    past: list[list[str]], expected_share: str
) -> None:
    trace, answer_id = _answer_only()

    found = UsualSteps(dict(enumerate(past))).skipped_in(trace)  # type: ignore[arg-type]

    assert [(f.kind, f.span_ids) for f in found] == [("skipped_step", (answer_id,))]
    assert "retrieval:kb" in found[0].message
    assert expected_share in found[0].message


@pytest.mark.parametrize(
    "past",
    [
        [RETRIEVE_THEN_ANSWER] * 4,  # too few runs to know what is usual
        [RETRIEVE_THEN_ANSWER] * 8 + [["llm:gpt-4o"]] * 2,  # 80%: not usual enough
    ],
)
def test_usual_steps_stay_quiet_without_a_clear_habit(past: list[list[str]]) -> None:
    trace, _ = _answer_only()

    assert UsualSteps(dict(enumerate(past))).skipped_in(trace) == []  # type: ignore[arg-type]


def test_usual_steps_leave_the_trace_itself_out_of_its_history() -> None:
    trace, _ = _answer_only()
    paths = dict(enumerate([RETRIEVE_THEN_ANSWER] * 9))
    paths[99] = ["llm:gpt-4o"]  # the trace's own stored path
    settings = ExpectationSettings(min_runs=5, min_share=1.0)

    with_self = UsualSteps(paths, settings).skipped_in(trace)  # type: ignore[arg-type]
    without_self = UsualSteps(paths, settings).skipped_in(trace, own_key=99)  # type: ignore[arg-type]

    assert with_self == []
    assert [f.kind for f in without_self] == ["skipped_step"]
    assert "100% of 9" in without_self[0].message
