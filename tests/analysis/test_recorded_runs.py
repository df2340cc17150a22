"""Recorded agent runs (tests/fixtures/runs, from ../shared/cases/runs) get the verdicts
listed in their expected.json, in every convention they were converted to."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pathwatch.server.analysis.analyse import analyse_trace
from pathwatch.server.analysis.rules import load_rules
from tests.analysis.builders import FIXTURES, traces_in

RUNS = FIXTURES / "runs"
EXPECTED = {
    run["trace_id"]: run for run in json.loads((RUNS / "expected.json").read_text())["runs"]
}
AIRLINE_RULES = load_rules(
    (Path(__file__).parents[2] / "examples" / "rules" / "airline.yaml").read_text()
)
RUN_FILES = [
    pytest.param(path.relative_to(RUNS), id=str(path.relative_to(RUNS)))
    for path in sorted(RUNS.glob("*/*.otlp.json"))
]


def _analysed(relative: Path) -> tuple[dict[str, Any], list[Any]]:
    (trace,) = traces_in(RUNS / relative)
    return EXPECTED[trace.trace_id], analyse_trace(trace, rules=AIRLINE_RULES)


def test_every_convention_of_every_run_is_covered() -> None:
    assert len(RUN_FILES) == 9
    assert {"genai", "openinference", "openllmetry"} == {
        p.parent.name for p in RUNS.glob("*/*.json")
    }


@pytest.mark.parametrize("relative", RUN_FILES)
def test_recorded_run_loops_only_where_identical_calls_got_identical_results(
    relative: Path,
) -> None:
    expected, findings = _analysed(relative)

    loops = {frozenset(f.span_ids) for f in findings if f.kind == "loop"}
    wanted = {
        frozenset(group["span_ids"])
        for group in expected["identical_call_groups"]
        if group["max_same_result"] >= 3
    }
    assert loops == wanted
    assert bool(loops) == ("LOOP" in expected["verdicts"])


@pytest.mark.parametrize("relative", RUN_FILES)
def test_recorded_run_failed_tool_calls_are_error_steps(relative: Path) -> None:
    expected, findings = _analysed(relative)

    error_steps = [f.span_ids for f in findings if f.kind == "error_step"]
    assert sorted(error_steps) == sorted((c["span_id"],) for c in expected["failed_tool_calls"])
    assert bool(error_steps) == ("FAILED_TOOL" in expected["verdicts"])


@pytest.mark.parametrize("relative", RUN_FILES)
def test_recorded_run_ordering_violations_are_found_with_both_steps(relative: Path) -> None:
    expected, findings = _analysed(relative)

    ordering = [f for f in findings if f.kind == "before"]
    assert [f.span_ids[0] for f in ordering] == [
        v["span_id"] for v in expected["ordering_violations"]
    ]
    assert all(len(f.span_ids) == 2 and f.severity == "error" for f in ordering)
    assert all(f.rule_id == "reservation-looked-up-before-change" for f in ordering)


@pytest.mark.parametrize("relative", RUN_FILES)
def test_recorded_run_has_no_other_findings(relative: Path) -> None:
    expected, findings = _analysed(relative)

    assert {f.kind for f in findings} <= {"loop", "error_step", "before"}
    if expected["verdicts"] == ["CLEAN"]:
        assert findings == []


def test_ordering_violation_points_at_the_model_turn_that_chose_the_cancel() -> None:
    (trace,) = traces_in(RUNS / "genai" / "tau-bench_airline__task-41_trial-2.otlp.json")

    (finding,) = analyse_trace(trace, rules=AIRLINE_RULES)

    by_id = {s.span_id: s for s in trace.steps}
    cancel, turn = (by_id[span_id] for span_id in finding.span_ids)
    assert cancel.name == "cancel_reservation"
    assert turn.type == "llm"
    assert cancel.tool_call_id in turn.requested_tool_call_ids
