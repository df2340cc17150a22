"""Analysis records from decoded spans, for analysis without a server or a database:
`pathwatch check` and the pytest helper."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from pathwatch.collector.decode import SpanRecord
from pathwatch.collector.normalise import normalise_span
from pathwatch.server.analysis.records import (
    SERVICE_VERSION,
    StepRecord,
    TraceRecord,
    step_record,
    trace_record,
)


def traces_from_spans(spans: Sequence[SpanRecord]) -> list[TraceRecord]:
    """Group decoded spans by trace, normalise them and order each trace's steps.

    A span delivered twice counts once; a start marker (no end time) gives way to the
    ended span with the same id. A trace is complete when its root span has ended and
    stalled otherwise: a file or a test holds all the spans that will ever arrive.
    """
    by_trace: dict[bytes, dict[bytes, SpanRecord]] = defaultdict(dict)
    for span in spans:
        kept = by_trace[span.trace_id].get(span.span_id)
        if kept is None or (kept.end_time_ns is None and span.end_time_ns is not None):
            by_trace[span.trace_id][span.span_id] = span
    return [_trace_from_spans(trace_id, list(kept.values())) for trace_id, kept in by_trace.items()]


def _trace_from_spans(trace_id: bytes, spans: list[SpanRecord]) -> TraceRecord:
    steps = [_step_from_span(span) for span in spans]
    roots = [span for span in spans if span.parent_span_id is None]
    is_complete = any(root.end_time_ns is not None for root in roots)
    version = next(
        (str(s.resource[SERVICE_VERSION]) for s in spans if SERVICE_VERSION in s.resource),
        None,
    )
    return trace_record(
        trace_id.hex(),
        steps,
        status="complete" if is_complete else "stalled",
        service_version=version,
    )


def _step_from_span(span: SpanRecord) -> StepRecord:
    return step_record(
        normalise_span(span),
        span_id=span.span_id.hex(),
        parent_span_id=span.parent_span_id.hex() if span.parent_span_id else None,
        span_name=span.name,
        start_time_ns=span.start_time_ns,
        end_time_ns=span.end_time_ns,
        status_code=span.status_code,
        attributes=span.attributes,
    )
