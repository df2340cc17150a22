"""Rules through the API (versions, line-numbered errors, dry run) and the findings they
produce on stored traces; findings listed, counted and used as trace filters."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.conftest import FIXTURES, RunningServer, wait_for

AIRLINE_AGENT = "tau-bench tool-calling agent (airline)"
AIRLINE_RULES = (Path(__file__).parents[2] / "examples" / "rules" / "airline.yaml").read_text()
RUNS = FIXTURES / "runs" / "genai"
TASK_41 = "e8c82739426d6cef8837a2c295c276f8"
CANCEL_SPAN = "87132091127a3c09"


def _post_run(server: RunningServer, name: str) -> None:
    body = (RUNS / name).read_bytes()
    reply = httpx.post(
        f"{server.otlp_http_url}/v1/traces",
        content=body,
        headers={"Content-Type": "application/json"},
    )
    assert reply.status_code == 200, reply.text


def _analysed(server: RunningServer, count: int) -> list[dict]:  # type: ignore[type-arg]
    traces = httpx.get(f"{server.base_url}/api/v1/traces").json()["traces"]
    done = [t for t in traces if t["status"] != "open"]
    if len(done) < count:
        return []
    details = [httpx.get(f"{server.base_url}/api/v1/traces/{t['trace_id']}").json() for t in done]
    return details if all(d["trace"]["trace_id"] for d in details) else []


def test_rules_file_errors_come_back_with_line_numbers_and_save_nothing(
    server: RunningServer,
) -> None:
    broken = "version: 1\nrules:\n  - id: r1\n    kind: eventualy\n"

    reply = httpx.put(f"{server.base_url}/api/v1/rules/{AIRLINE_AGENT}", json={"body": broken})

    assert reply.status_code == 422
    problems = reply.json()["error"]["problems"]
    assert problems and problems[0]["line"] == 4
    assert httpx.get(f"{server.base_url}/api/v1/rules/{AIRLINE_AGENT}").status_code == 404


def test_saved_rules_are_versioned_and_dry_run_flags_the_ordering_violation(
    server: RunningServer,
) -> None:
    for name in (
        "tau-bench_airline__task-41_trial-2.otlp.json",
        "tau-bench_airline__task-12_trial-0.otlp.json",
    ):
        _post_run(server, name)
    wait_for(lambda: _analysed(server, 2), message="both runs analysed")

    dry = httpx.post(
        f"{server.base_url}/api/v1/rules/{AIRLINE_AGENT}/dry-run",
        json={"body": AIRLINE_RULES},
        params={"last": 10},
    ).json()
    first = httpx.put(
        f"{server.base_url}/api/v1/rules/{AIRLINE_AGENT}", json={"body": AIRLINE_RULES}
    ).json()
    second = httpx.put(
        f"{server.base_url}/api/v1/rules/{AIRLINE_AGENT}",
        json={"body": AIRLINE_RULES + "\n# reviewed\n"},
    ).json()
    versions = httpx.get(f"{server.base_url}/api/v1/rules/{AIRLINE_AGENT}/versions").json()

    assert dry["traces_checked"] == 2
    assert dry["traces_flagged"] == 1
    flagged = next(t for t in dry["traces"] if t["findings"])
    assert flagged["trace_id"] == TASK_41
    assert flagged["findings"][0]["kind"] == "before"
    assert flagged["findings"][0]["span_ids"][0] == CANCEL_SPAN
    assert len(flagged["findings"][0]["span_ids"]) == 2
    assert (first["version"], second["version"]) == (1, 2)
    assert [v["version"] for v in versions] == [2, 1]


def test_rules_in_force_flag_new_traces_which_list_and_filter_by_finding(
    server: RunningServer,
) -> None:
    saved = httpx.put(
        f"{server.base_url}/api/v1/rules/{AIRLINE_AGENT}", json={"body": AIRLINE_RULES}
    )
    assert saved.status_code == 200
    for name in (
        "tau-bench_airline__task-41_trial-2.otlp.json",
        "tau-bench_airline__task-12_trial-0.otlp.json",
        "tau-bench_airline__task-13_trial-0.otlp.json",
    ):
        _post_run(server, name)

    details = wait_for(lambda: _analysed(server, 3), message="three runs analysed")
    listed = httpx.get(f"{server.base_url}/api/v1/findings", params={"agent": AIRLINE_AGENT}).json()
    by_rule = httpx.get(
        f"{server.base_url}/api/v1/traces", params={"rule": "reservation-looked-up-before-change"}
    ).json()
    by_loop = httpx.get(f"{server.base_url}/api/v1/traces", params={"finding": "loop"}).json()

    task_41 = next(d for d in details if d["trace"]["trace_id"] == TASK_41)
    ordering = [f for f in task_41["findings"] if f["kind"] == "before"]
    assert len(ordering) == 1
    assert ordering[0]["rule_id"] == "reservation-looked-up-before-change"
    assert ordering[0]["rule_version"] == 1
    assert ordering[0]["span_ids"][0] == CANCEL_SPAN
    counts = {(c["agent_name"], c["kind"]): c["count"] for c in listed["counts"]}
    assert counts[(AIRLINE_AGENT, "before")] == 1
    assert sum(counts.values()) == len(listed["findings"])
    assert [t["trace_id"] for t in by_rule["traces"]] == [TASK_41]
    assert [t["trace_id"] for t in by_loop["traces"]] == ["20a99222b5789d8b18d2aa3864af677e"]
