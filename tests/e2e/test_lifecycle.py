"""Trace lifecycle through a real server: complete, stalled, reopened, and a hung step
reported by the SDK helper's start markers."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import set_span_in_context

from pathwatch.collector.sdk import SpanStartReporter
from tests.conftest import RunningServer, start_server, wait_for

STALL_TIMEOUT_SECONDS = 2


@pytest.fixture
def quick_server(database_url: str, tmp_path: Path) -> Iterator[RunningServer]:
    running = start_server(
        database_url,
        tmp_path,
        extra_args=("--settle-seconds", "1", "--stall-timeout", str(STALL_TIMEOUT_SECONDS)),
    )
    yield running
    running.stop()


def _provider(server: RunningServer, *, report_starts: bool) -> TracerProvider:
    provider = TracerProvider(resource=Resource.create({"service.name": "hanging-agent"}))
    endpoint = f"{server.otlp_http_url}/v1/traces"
    if report_starts:
        provider.add_span_processor(
            SpanStartReporter(OTLPSpanExporter(endpoint=endpoint), schedule_delay_millis=50)
        )
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    return provider


def _trace(server: RunningServer, trace_id: str) -> dict:  # type: ignore[type-arg]
    reply = httpx.get(f"{server.base_url}/api/v1/traces/{trace_id}")
    return reply.json() if reply.status_code == 200 else {}


def test_hung_step_is_flagged_as_stall_on_that_step(quick_server: RunningServer) -> None:
    provider = _provider(quick_server, report_starts=True)
    tracer = provider.get_tracer("test")
    root = tracer.start_span(
        "invoke_agent hanging-agent", attributes={"gen_ai.operation.name": "invoke_agent"}
    )
    context = set_span_in_context(root)
    with tracer.start_as_current_span(
        "chat gpt-4o", context=context, attributes={"gen_ai.operation.name": "chat"}
    ):
        pass
    hung = tracer.start_span(
        "execute_tool fetch_sales",
        context=context,
        attributes={"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "fetch_sales"},
    )
    provider.force_flush()
    trace_id = format(root.get_span_context().trace_id, "032x")
    hung_id = format(hung.get_span_context().span_id, "016x")
    started = time.monotonic()

    detail = wait_for(
        lambda: (d := _trace(quick_server, trace_id)) and d["findings"] and d,
        timeout=STALL_TIMEOUT_SECONDS + 15,
        message="the stall finding",
    )
    flagged_after = time.monotonic() - started

    assert detail["trace"]["status"] == "stalled"
    assert detail["trace"]["has_root"] is False
    stalls = [f for f in detail["findings"] if f["kind"] == "stall"]
    assert len(stalls) == 1
    assert stalls[0]["span_ids"][0] == hung_id
    assert "execute_tool" in stalls[0]["message"] or "fetch_sales" in stalls[0]["message"]
    assert flagged_after < STALL_TIMEOUT_SECONDS + 10
    hung_span = next(s for s in detail["spans"] if s["span_id"] == hung_id)
    assert hung_span["end_time_unix_nano"] is None

    hung.end()
    root.end()
    provider.force_flush()
    finished = wait_for(
        lambda: (
            (d := _trace(quick_server, trace_id))["trace"]["status"] == "complete"
            and d["trace"]["finding_count"] == 0
            and d
        ),
        timeout=20,
        message="the trace to complete with its stall gone",
    )
    assert finished["trace"]["span_count"] == 3
    assert len(finished["spans"]) == 3
    assert all(s["end_time_unix_nano"] is not None for s in finished["spans"])
    provider.shutdown()


def test_late_span_reopens_a_complete_trace_and_replaces_its_findings(
    quick_server: RunningServer,
) -> None:
    provider = _provider(quick_server, report_starts=False)
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span(
        "invoke_agent looper", attributes={"gen_ai.operation.name": "invoke_agent"}
    ) as root:
        for _ in range(3):
            with tracer.start_as_current_span(
                "execute_tool search",
                attributes={
                    "gen_ai.operation.name": "execute_tool",
                    "gen_ai.tool.name": "search",
                    "gen_ai.tool.call.arguments": '{"q": "x"}',
                    "gen_ai.tool.call.result": "[]",
                },
            ):
                pass
    trace_id = format(root.get_span_context().trace_id, "032x")
    first = wait_for(
        lambda: (d := _trace(quick_server, trace_id)) and d["findings"] and d,
        timeout=20,
        message="the loop finding",
    )
    assert [f["kind"] for f in first["findings"]] == ["loop"]

    late = tracer.start_span(
        "execute_tool search",
        context=set_span_in_context(root),
        attributes={
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": "search",
            "gen_ai.tool.call.arguments": '{"q": "x"}',
            "gen_ai.tool.call.result": "[]",
        },
    )
    late.end()
    provider.force_flush()

    again = wait_for(
        lambda: (
            (d := _trace(quick_server, trace_id))["trace"]["span_count"] == 5
            and d["trace"]["status"] == "complete"
            and d["findings"]
            and len(d["findings"][0]["span_ids"]) == 4
            and d
        ),
        timeout=20,
        message="re-analysis after the late span",
    )
    assert [f["kind"] for f in again["findings"]] == ["loop"]
    provider.shutdown()


def test_an_agents_stall_after_rule_sets_its_own_stall_timeout(
    database_url: str, tmp_path: Path
) -> None:
    running = start_server(
        database_url, tmp_path, extra_args=("--settle-seconds", "1", "--stall-timeout", "600")
    )
    try:
        rules = "version: 1\nrules:\n  - id: quick-stall\n    kind: stall_after\n    seconds: 1\n"
        saved = httpx.put(f"{running.base_url}/api/v1/rules/hanging-agent", json={"body": rules})
        assert saved.status_code == 200
        provider = _provider(running, report_starts=False)
        tracer = provider.get_tracer("test")
        root = tracer.start_span(
            "invoke_agent hanging-agent",
            attributes={
                "gen_ai.operation.name": "invoke_agent",
                "gen_ai.agent.name": "hanging-agent",
            },
        )
        with tracer.start_as_current_span(
            "chat gpt-4o",
            context=set_span_in_context(root),
            attributes={"gen_ai.operation.name": "chat"},
        ):
            pass
        provider.force_flush()
        trace_id = format(root.get_span_context().trace_id, "032x")

        detail = wait_for(
            lambda: (d := _trace(running, trace_id)) and d["trace"]["status"] == "stalled" and d,
            timeout=20,
            message="the trace to stall after the agent's own 1 s",
        )
    finally:
        running.stop()

    assert detail["trace"]["agent_name"] == "hanging-agent"
