"""The demo agents' runs, sent through the OpenTelemetry SDK, get the right findings."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pathwatch.server.demo import DEMO_AGENTS, run_demo
from tests.conftest import RunningServer, start_server, wait_for


@pytest.fixture
def demo_server(database_url: str, tmp_path: Path) -> Iterator[RunningServer]:
    running = start_server(
        database_url, tmp_path, extra_args=("--settle-seconds", "1", "--stall-timeout", "2")
    )
    yield running
    running.stop()


def _all_analysed(server: RunningServer) -> list[dict]:  # type: ignore[type-arg]
    listed = httpx.get(f"{server.base_url}/api/v1/traces", params={"limit": 100}).json()
    traces = listed["traces"]
    expected = sum(agent.runs for agent in DEMO_AGENTS)
    if len(traces) != expected or any(t["status"] == "open" for t in traces):
        return []
    details = [httpx.get(f"{server.base_url}/api/v1/traces/{t['trace_id']}").json() for t in traces]
    stalled = [d for d in details if d["trace"]["status"] == "stalled"]
    return details if all(d["findings"] for d in stalled) else []


def test_demo_faults_are_found_on_the_right_steps_and_healthy_runs_are_clean(
    demo_server: RunningServer,
) -> None:
    assert run_demo(demo_server.otlp_http_url) == 0

    details = wait_for(
        lambda: _all_analysed(demo_server),
        timeout=40,
        message="every demo trace finished and analysed",
    )

    kinds = Counter((d["trace"]["agent_name"], f["kind"]) for d in details for f in d["findings"])
    assert kinds == Counter(
        {
            ("doc-searcher", "loop"): 2,
            ("report-writer", "stall"): 1,
            ("research-assistant", "skipped_step"): 1,
        }
    )
    for detail in details:
        labels = {s["span_id"]: s["label"] for s in detail["steps"]}
        for finding in detail["findings"]:
            pinned = [labels[span_id] for span_id in finding["span_ids"]]
            if finding["kind"] == "loop":
                assert pinned == ["tool:search_docs"] * 4
            if finding["kind"] == "stall":
                assert pinned[0] == "tool:render_pdf"
            if finding["kind"] == "skipped_step":
                assert "retrieval:kb" in finding["message"]
                assert pinned == ["llm:gpt-4o-mini"]
    agents = {d["trace"]["agent_name"] for d in details}
    assert agents == {"research-assistant", "order-support", "doc-searcher", "report-writer"}
    assert {
        d["trace"]["agent_version"] for d in details if d["trace"]["agent_name"] == "order-support"
    } == {"2.0.1"}
