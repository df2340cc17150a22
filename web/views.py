"""Values the templates show: plain text prepared from query records. Pure."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from pathwatch.server.queries.traces import SpanDetail

SEVERITY_ORDER = ("error", "warning", "info")
MAX_LISTED_STEPS = 3
STATUS_CODE_NAMES = {0: "unset", 1: "ok", 2: "error"}  # trace.proto Status.StatusCode
# trace.proto Span.SpanKind
SPAN_KIND_NAMES = {
    0: "unspecified",
    1: "internal",
    2: "server",
    3: "client",
    4: "producer",
    5: "consumer",
}


@dataclass(frozen=True)
class Field:
    """One key and its value as text; `is_block` when the text spans several lines."""

    key: str
    text: str
    is_block: bool


@dataclass(frozen=True)
class EventView:
    name: str
    at: str
    attributes: list[Field]


@dataclass(frozen=True)
class StepView:
    """Everything the step panel shows about one span."""

    span_id: str
    label: str
    step_type: str
    summary: list[Field]
    attributes: list[Field]
    events: list[EventView]
    resource: list[Field]
    tool_arguments: str | None
    tool_result: str | None


def format_duration(duration_ms: float | None) -> str:
    if duration_ms is None:
        return "—"
    if duration_ms < 1:
        return f"{duration_ms * 1000:.0f} µs"
    if duration_ms < 1000:
        return f"{duration_ms:.1f} ms"
    if duration_ms < 60_000:
        return f"{duration_ms / 1000:.2f} s"
    minutes, seconds = divmod(duration_ms / 1000, 60)
    return f"{minutes:.0f} min {seconds:.0f} s"


def format_time(moment: datetime | None) -> str:
    if moment is None:
        return "—"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def format_time_ns(time_ns: int | None) -> str:
    if time_ns is None:
        return "—"
    moment = datetime.fromtimestamp(time_ns / 1e9, tz=UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"


def format_value(value: Any) -> str:
    """An attribute value as text: strings as they are, anything else as indented JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)


def fields(mapping: Mapping[str, Any]) -> list[Field]:
    """Key-sorted fields of an attribute map."""
    return [_field(key, mapping[key]) for key in sorted(mapping)]


def _field(key: str, value: Any) -> Field:
    text = format_value(value)
    return Field(key=key, text=text, is_block="\n" in text or len(text) > 120)


def step_view(span: SpanDetail) -> StepView:
    return StepView(
        span_id=span.span_id,
        label=span.step_label,
        step_type=span.step_type,
        summary=_summary_fields(span),
        attributes=fields(span.attributes),
        events=[_event_view(event) for event in span.events if isinstance(event, dict)],
        resource=fields(span.resource),
        tool_arguments=None if span.tool_arguments is None else format_value(span.tool_arguments),
        tool_result=span.tool_result,
    )


def _summary_fields(span: SpanDetail) -> list[Field]:
    status = STATUS_CODE_NAMES.get(span.status_code, str(span.status_code))
    if span.status_message:
        status = f"{status}: {span.status_message}"
    parent = span.parent_span_id or "— (root)"
    if span.has_missing_parent:
        parent = f"{parent} (missing: never arrived)"
    pairs: list[tuple[str, Any]] = [
        ("span name", span.name),
        ("span id", span.span_id),
        ("parent span id", parent),
        ("kind", SPAN_KIND_NAMES.get(span.kind, str(span.kind))),
        ("start", format_time_ns(span.start_time_ns)),
        ("duration", format_duration(span.duration_ms)),
        ("status", status),
        ("model", span.model),
        ("tool", span.tool_name),
        ("input tokens", span.input_tokens),
        ("output tokens", span.output_tokens),
        ("scope", " ".join(str(v) for v in span.scope.values() if v) or None),
    ]
    return [_field(key, value) for key, value in pairs if value is not None]


def _event_view(event: dict[str, Any]) -> EventView:
    attributes = event.get("attributes")
    time_ns = event.get("time_ns")
    return EventView(
        name=str(event.get("name", "")),
        at=format_time_ns(time_ns) if isinstance(time_ns, int) else "—",
        attributes=fields(attributes) if isinstance(attributes, dict) else [],
    )


class FindingLike(Protocol):
    """A stored finding (queries) or a dry run's (analysis): the fields both carry."""

    @property
    def kind(self) -> str: ...
    @property
    def severity(self) -> str: ...
    @property
    def message(self) -> str: ...
    @property
    def rule_id(self) -> str | None: ...
    @property
    def rule_version(self) -> int | None: ...
    @property
    def span_ids(self) -> Sequence[str]: ...


@dataclass(frozen=True)
class FindingView:
    """One finding as the pages show it; `steps` are the labels of its pinned steps that
    are in the trace, `first_span_id` the step a click on it selects."""

    kind: str
    severity: str
    rule: str | None
    message: str
    span_ids: tuple[str, ...]
    first_span_id: str | None
    steps: tuple[str, ...]

    @property
    def steps_text(self) -> str:
        """The pinned steps in a line: all of up to three, else the first and a count."""
        if len(self.steps) <= MAX_LISTED_STEPS:
            return " → ".join(self.steps)
        return f"{self.steps[0]} … ({len(self.steps)} steps)"


def finding_view(finding: FindingLike, *, labels: Mapping[str, str]) -> FindingView:
    """`labels` maps span ids (hex) to step labels; pinned ids not in it are left out of
    `steps` and never chosen as `first_span_id`."""
    present = [span_id for span_id in finding.span_ids if span_id in labels]
    rule = None
    if finding.rule_id is not None:
        version = f" v{finding.rule_version}" if finding.rule_version is not None else ""
        rule = finding.rule_id + version
    return FindingView(
        kind=finding.kind,
        severity=finding.severity,
        rule=rule,
        message=finding.message,
        span_ids=tuple(present),
        first_span_id=present[0] if present else None,
        steps=tuple(labels[span_id] for span_id in present),
    )


def findings_by_step(findings: Sequence[FindingView]) -> dict[str, list[FindingView]]:
    """The findings pinned on each step, in the order given; a finding pinned twice on one
    step is listed once for it."""
    by_step: dict[str, list[FindingView]] = {}
    for finding in findings:
        for span_id in dict.fromkeys(finding.span_ids):
            by_step.setdefault(span_id, []).append(finding)
    return by_step


def worst_severity(findings: Sequence[FindingView]) -> str | None:
    ranks = [SEVERITY_ORDER.index(f.severity) for f in findings if f.severity in SEVERITY_ORDER]
    return SEVERITY_ORDER[min(ranks)] if ranks else None


def kinds_text(kinds: Mapping[str, int]) -> str:
    """Finding counts by kind as one short line: `loop (2), stall`."""
    return ", ".join(f"{kind} ({count})" if count > 1 else kind for kind, count in kinds.items())
