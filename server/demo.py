"""`pathwatch demo`: small scripted agents that emit spans through the OpenTelemetry SDK.

Each agent sends its spans with the SDK's OTLP/HTTP exporter, as a real agent would.
Some use the OTel GenAI conventions, others OpenInference. Their runs show what
Pathwatch is for: a healthy retrieval agent, a tool-calling agent, one that loops on a
tool, one that never finishes, and one that skips its retrieval step.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Span, Status, StatusCode, Tracer, set_span_in_context
from opentelemetry.util.types import AttributeValue

from pathwatch.collector.sdk import SpanStartReporter

logger = logging.getLogger(__name__)

MS = 1_000_000  # nanoseconds


@dataclass
class Clock:
    """Simulated time: runs take seconds of span time but milliseconds to send."""

    now_ns: int

    def advance(self, milliseconds: float) -> int:
        self.now_ns += int(milliseconds * MS)
        return self.now_ns


@dataclass(frozen=True)
class DemoAgent:
    name: str
    version: str
    convention: str  # "genai" or "openinference"
    runs: int
    run: Callable[[Tracer, Clock, random.Random, int], None]
    report_starts: bool = False  # export start markers (collector/sdk.py)


@contextmanager
def _span(
    tracer: Tracer,
    clock: Clock,
    name: str,
    attributes: Mapping[str, AttributeValue],
    *,
    parent: Span | None = None,
    duration_ms: float = 5.0,
    end: bool = True,
) -> Iterator[Span]:
    context = set_span_in_context(parent) if parent is not None else None
    span = tracer.start_span(
        name,
        context=context,
        attributes=attributes,
        start_time=clock.advance(1),
    )
    yield span
    if end:
        span.end(end_time=clock.advance(duration_ms))


def _genai_chat(
    tracer: Tracer,
    clock: Clock,
    parent: Span,
    *,
    model: str,
    tokens: tuple[int, int],
    tool_calls: list[tuple[str, dict[str, object]]] | None = None,
) -> None:
    parts = [{"type": "tool_call", "name": n, "arguments": a} for n, a in tool_calls or []]
    if not parts:
        parts = [{"type": "text", "content": "Here is what I found."}]
    attributes: dict[str, AttributeValue] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": model,
        "gen_ai.usage.input_tokens": tokens[0],
        "gen_ai.usage.output_tokens": tokens[1],
        "gen_ai.output.messages": json.dumps([{"role": "assistant", "parts": parts}]),
    }
    with _span(tracer, clock, f"chat {model}", attributes, parent=parent, duration_ms=900):
        pass


def _genai_tool(
    tracer: Tracer,
    clock: Clock,
    parent: Span,
    name: str,
    arguments: dict[str, object],
    result: object,
    *,
    failed: bool = False,
) -> None:
    attributes = {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": name,
        "gen_ai.tool.call.arguments": json.dumps(arguments),
        "gen_ai.tool.call.result": json.dumps(result),
    }
    with _span(
        tracer, clock, f"execute_tool {name}", attributes, parent=parent, duration_ms=120
    ) as span:
        if failed:
            span.set_status(Status(StatusCode.ERROR, "tool failed"))


def _root(
    tracer: Tracer, clock: Clock, agent: str, *, end: bool = True
) -> AbstractContextManager[Span]:
    attributes = {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": agent}
    return _span(tracer, clock, f"invoke_agent {agent}", attributes, duration_ms=50, end=end)


def run_research_assistant(tracer: Tracer, clock: Clock, rng: random.Random, index: int) -> None:
    """Retrieves from the knowledge base, then answers. Healthy."""
    question = rng.choice(["refund policy", "shipping times", "warranty terms"])
    with _root(tracer, clock, "research-assistant") as root:
        attributes = {
            "gen_ai.operation.name": "retrieval",
            "gen_ai.data_source.id": "kb",
            "gen_ai.request.model": "text-embedding-3-small",
            "query": question,
        }
        with _span(tracer, clock, "retrieval kb", attributes, parent=root, duration_ms=180):
            pass
        _genai_chat(tracer, clock, root, model="gpt-4o-mini", tokens=(640, 120))


def run_research_assistant_skipping(
    tracer: Tracer, clock: Clock, rng: random.Random, index: int
) -> None:
    """The same agent answering from memory: its usual retrieval step is missing."""
    with _root(tracer, clock, "research-assistant") as root:
        _genai_chat(tracer, clock, root, model="gpt-4o-mini", tokens=(210, 95))


def run_order_support(tracer: Tracer, clock: Clock, rng: random.Random, index: int) -> None:
    """An OpenInference tool-calling agent: model → lookup_order → model."""
    order_id = f"A-{1000 + index}"
    attributes = {
        "openinference.span.kind": "AGENT",
        "agent.name": "order-support",
        "input.value": f"Where is my order {order_id}?",
    }
    with _span(tracer, clock, "order-support", attributes, duration_ms=40) as root:
        llm: dict[str, AttributeValue] = {
            "openinference.span.kind": "LLM",
            "llm.model_name": "gpt-4o",
            "llm.token_count.prompt": 410,
            "llm.token_count.completion": 38,
        }
        with _span(tracer, clock, "ChatOpenAI", llm, parent=root, duration_ms=700):
            pass
        tool: dict[str, AttributeValue] = {
            "openinference.span.kind": "TOOL",
            "tool.name": "lookup_order",
            "input.value": json.dumps({"order_id": order_id}),
            "output.value": json.dumps({"order_id": order_id, "status": "shipped"}),
        }
        with _span(tracer, clock, "lookup_order", tool, parent=root, duration_ms=90):
            pass
        with _span(tracer, clock, "ChatOpenAI", llm, parent=root, duration_ms=650):
            pass


def run_doc_searcher(tracer: Tracer, clock: Clock, rng: random.Random, index: int) -> None:
    """Loops: asks for the same search four times and gets the same empty result."""
    with _root(tracer, clock, "doc-searcher") as root:
        _genai_chat(
            tracer,
            clock,
            root,
            model="gpt-4o-mini",
            tokens=(300, 40),
            tool_calls=[("search_docs", {"query": "umbrella policy"})],
        )
        for _ in range(4):
            _genai_tool(
                tracer,
                clock,
                root,
                "search_docs",
                {"query": "umbrella policy"},
                {"hits": 0, "docs": []},
            )
        _genai_chat(tracer, clock, root, model="gpt-4o-mini", tokens=(520, 60))


def run_report_writer(tracer: Tracer, clock: Clock, rng: random.Random, index: int) -> None:
    """Never finishes: its root span and its last tool call are never ended. It reports
    span starts, so the hung tool call is visible."""
    with _root(tracer, clock, "report-writer", end=False) as root:
        _genai_chat(
            tracer,
            clock,
            root,
            model="gpt-4o",
            tokens=(900, 80),
            tool_calls=[("fetch_sales", {"quarter": "Q3"})],
        )
        _genai_tool(tracer, clock, root, "fetch_sales", {"quarter": "Q3"}, {"rows": 1200})
        attributes = {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": "render_pdf",
            "gen_ai.tool.call.arguments": json.dumps({"pages": 40}),
        }
        with _span(tracer, clock, "execute_tool render_pdf", attributes, parent=root, end=False):
            pass


DEMO_AGENTS = (
    DemoAgent("research-assistant", "1.4.0", "genai", 8, run_research_assistant),
    DemoAgent("research-assistant", "1.4.0", "genai", 1, run_research_assistant_skipping),
    DemoAgent("order-support", "2.0.1", "openinference", 4, run_order_support),
    DemoAgent("doc-searcher", "0.9.0", "genai", 2, run_doc_searcher),
    DemoAgent("report-writer", "0.3.0", "genai", 1, run_report_writer, report_starts=True),
)


def run_demo(endpoint: str, *, seed: int = 7) -> int:
    """Send every demo agent's runs to the OTLP/HTTP `endpoint`; returns 0 when all were sent."""
    rng = random.Random(seed)  # noqa: S311 - demo data, not security
    clock = Clock(now_ns=time.time_ns() - 10 * 60 * 1_000 * MS)
    sent_ok = True
    for agent in DEMO_AGENTS:
        provider = TracerProvider(
            resource=Resource.create(
                {
                    "service.name": agent.name,
                    "service.version": agent.version,
                }
            )
        )
        traces_url = f"{endpoint.rstrip('/')}/v1/traces"
        if agent.report_starts:
            starts = OTLPSpanExporter(endpoint=traces_url, timeout=10)
            provider.add_span_processor(SpanStartReporter(starts, schedule_delay_millis=100))
        exporter = OTLPSpanExporter(endpoint=traces_url, timeout=10)
        provider.add_span_processor(BatchSpanProcessor(exporter))
        tracer = provider.get_tracer("pathwatch.demo")
        for index in range(agent.runs):
            agent.run(tracer, clock, rng, index)
            clock.advance(rng.uniform(5_000, 40_000))
        sent_ok = provider.force_flush(timeout_millis=15_000) and sent_ok
        provider.shutdown()
    logger.info("demo agents sent their spans to %s", endpoint)
    return 0 if sent_ok else 1
