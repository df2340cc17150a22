"""Helpers for agents that send spans to Pathwatch through the OpenTelemetry Python SDK.

OTLP exports a span only when it ends, so a step that hangs sends nothing. The
`SpanStartReporter` processor exports a small start marker as each span begins: the
span's own ids, name, parent and attributes, `pathwatch.span_start = true`, no end time.
Pathwatch shows the step while it runs, pins a stall on it, and replaces the marker with
the span itself when the span ends.

    provider.add_span_processor(SpanStartReporter(OTLPSpanExporter(endpoint=...)))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=...)))

`record_token_logprobs(span, logprobs)` writes token logprobs as `pathwatch.token_logprobs`.
"""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace import Span as SdkSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace import Span

from pathwatch.collector.conventions import PATHWATCH_SPAN_START_MARKER, PATHWATCH_TOKEN_LOGPROBS


class SpanStartReporter(SpanProcessor):
    """Exports a start marker for every span as it starts, in batches, off the hot path."""

    def __init__(self, exporter: SpanExporter, *, schedule_delay_millis: float = 1000) -> None:
        self._batch = BatchSpanProcessor(exporter, schedule_delay_millis=schedule_delay_millis)

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        if not isinstance(span, SdkSpan):
            return
        start = span.start_time or 0
        marker = ReadableSpan(
            name=span.name,
            context=span.get_span_context(),
            parent=span.parent,
            resource=span.resource,
            attributes={**(span.attributes or {}), PATHWATCH_SPAN_START_MARKER: True},
            kind=span.kind,
            start_time=start,
            end_time=start,
            instrumentation_scope=span.instrumentation_scope,
        )
        self._batch.on_end(marker)

    def on_end(self, span: ReadableSpan) -> None:
        return

    def shutdown(self) -> None:
        self._batch.shutdown()  # type: ignore[no-untyped-call]

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._batch.force_flush(timeout_millis)


def record_token_logprobs(span: Span, logprobs: Sequence[float]) -> None:
    """Attach a model call's token logprobs, in token order, for drift monitoring."""
    span.set_attribute(PATHWATCH_TOKEN_LOGPROBS, [float(value) for value in logprobs])
