"""Bodies captured from real OpenTelemetry clients (tests/fixtures/clients) each yield
exactly one loop, on search_docs, whatever convention and argument format they use."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pathwatch.server.analysis.analyse import analyse_trace
from tests.analysis.builders import FIXTURES, traces_in

CLIENTS = FIXTURES / "clients"
INDEX = json.loads((CLIENTS / "index.json").read_text())


@pytest.mark.parametrize("entry", INDEX, ids=[entry["client"] for entry in INDEX])
def test_client_body_yields_exactly_one_loop_on_search_docs(entry: dict[str, Any]) -> None:
    (trace,) = traces_in(CLIENTS / entry["file"])

    findings = analyse_trace(trace)

    assert trace.trace_id == entry["trace_id"]
    assert len(trace.steps) == entry["spans"]
    assert [f.kind for f in findings] == ["loop"]
    by_id = {step.span_id: step for step in trace.steps}
    looped = [by_id[span_id] for span_id in findings[0].span_ids]
    assert [(s.type, s.name) for s in looped] == [("tool", "search_docs")] * 3


def test_every_captured_client_is_listed() -> None:
    files = {path.name for path in CLIENTS.iterdir()} - {"index.json", "README.md"}
    assert files == {entry["file"] for entry in INDEX}
