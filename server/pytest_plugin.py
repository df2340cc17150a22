"""pytest helper: capture the spans an agent emits through the OpenTelemetry SDK in memory
and assert Pathwatch's detectors and rules on them, as the server would.

Enable it with ``pytest_plugins = ["pathwatch.server.pytest_plugin"]`` in the root
``conftest.py``, then::

    def test_agent_answers_without_looping(pathwatch_spans):
        run_my_agent("Where is order A-1?")
        assert_no_findings(pathwatch_spans, rules="rules/support.yaml")

Spans go through the same OTLP encoding, decoder and analysis as `pathwatch check`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from pathwatch.collector.decode import SpanRecord, records_from_request
from pathwatch.collector.limits import IngestLimits
from pathwatch.server.analysis.analyse import analyse_trace
from pathwatch.server.analysis.findings import SEVERITIES, Finding
from pathwatch.server.analysis.records import TraceRecord
from pathwatch.server.analysis.rules import RuleSet, load_rules
from pathwatch.server.offline import traces_from_spans

RulesArgument = RuleSet | str | Path | None


class _CaptureProcessor(SpanProcessor):
    """Hands ended spans to an in-memory exporter until stopped. The SDK cannot remove a
    processor from a provider, so a stopped one just lets spans pass by."""

    def __init__(self, exporter: InMemorySpanExporter) -> None:
        self._exporter = exporter
        self._active = True

    def on_end(self, span: ReadableSpan) -> None:
        if self._active:
            self._exporter.export((span,))

    def stop(self) -> None:
        self._active = False

    def shutdown(self) -> None:
        self.stop()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


class SpanCapture:
    """The spans ended during one test, and what Pathwatch makes of them.

    Spans from the global tracer provider are captured; code that takes a provider
    explicitly can be given `tracer_provider`.
    """

    def __init__(self, tracer_provider: TracerProvider) -> None:
        self.tracer_provider = tracer_provider
        self.exporter = InMemorySpanExporter()
        self.processor = _CaptureProcessor(self.exporter)

    def finished_spans(self) -> tuple[ReadableSpan, ...]:
        return tuple(self.exporter.get_finished_spans())

    def spans(self) -> list[SpanRecord]:
        return span_records(self.finished_spans())

    def traces(self) -> list[TraceRecord]:
        return traces_from_spans(self.spans())

    def clear(self) -> None:
        self.exporter.clear()


@pytest.fixture
def pathwatch_spans() -> Iterator[SpanCapture]:
    """Capture the spans ended during the test (see SpanCapture)."""
    provider = _sdk_tracer_provider()
    capture = SpanCapture(provider)
    provider.add_span_processor(capture.processor)
    yield capture
    capture.processor.stop()
    capture.clear()


def _sdk_tracer_provider() -> TracerProvider:
    """The global SDK tracer provider, installed first when there is none yet."""
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        return current
    provider = TracerProvider()
    trace.set_tracer_provider(provider)
    installed = trace.get_tracer_provider()
    return installed if isinstance(installed, TracerProvider) else provider


def span_records(spans: Sequence[ReadableSpan]) -> list[SpanRecord]:
    """SDK spans as decoded span records, through the OTLP encoding an exporter sends."""
    if not spans:
        return []
    request = encode_spans(spans)
    return records_from_request(request, limits=IngestLimits()).spans


def findings_for(
    source: SpanCapture | Sequence[ReadableSpan],
    *,
    rules: RulesArgument = None,
    history: Sequence[int] | None = None,
) -> dict[str, list[Finding]]:
    """Trace id → findings, for every trace the spans make (traces without findings too).
    `rules` is a RuleSet, or the path of a rules file."""
    spans = source.finished_spans() if isinstance(source, SpanCapture) else source
    rule_set = _rule_set(rules)
    return {
        record.trace_id: analyse_trace(record, rules=rule_set, history=history)
        for record in traces_from_spans(span_records(spans))
    }


def assert_no_findings(
    source: SpanCapture | Sequence[ReadableSpan],
    *,
    rules: RulesArgument = None,
    severity: str = "warning",
) -> None:
    """Fail the test when any trace has a finding of `severity` or worse, listing them."""
    assert severity in SEVERITIES, severity
    worst = SEVERITIES.index(severity)
    found = [
        (trace_id, finding)
        for trace_id, findings in findings_for(source, rules=rules).items()
        for finding in findings
        if SEVERITIES.index(finding.severity) <= worst
    ]
    if found:
        lines = [
            f"  trace {trace_id}: {item.severity} {item.kind}: {item.message} "
            f"(spans {', '.join(item.span_ids)})"
            for trace_id, item in found
        ]
        raise AssertionError("Pathwatch findings:\n" + "\n".join(lines))


def _rule_set(rules: RulesArgument) -> RuleSet | None:
    if rules is None or isinstance(rules, RuleSet):
        return rules
    path = Path(rules)
    return load_rules(path.read_text(encoding="utf-8"), source=str(path))
