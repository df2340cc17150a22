"""Reads of traces and their spans. Query functions take a connection and never commit."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, select, text, tuple_

from pathwatch.server.errors import InvalidRequestError
from pathwatch.server.models import findings, spans, traces
from pathwatch.server.steps import WRAPPER_TYPES

MAX_PAGE_SIZE = 500


@dataclass(frozen=True)
class TraceSummary:
    trace_id: str
    agent_name: str
    agent_version: str | None
    service_name: str
    root_name: str | None
    has_root: bool
    start_time: datetime
    end_time: datetime | None
    duration_ms: float | None
    span_count: int
    error_count: int
    finding_count: int
    status: str


@dataclass(frozen=True)
class SpanDetail:
    span_id: str
    parent_span_id: str | None
    has_missing_parent: bool
    name: str
    kind: int
    start_time_ns: int
    end_time_ns: int | None
    duration_ms: float | None
    status_code: int
    status_message: str
    attributes: dict[str, Any]
    events: list[Any]
    links: list[Any]
    resource: dict[str, Any]
    scope: dict[str, Any]
    step_type: str
    step_label: str
    step_name: str | None
    tool_name: str | None
    tool_arguments: Any
    tool_result: str | None
    model: str | None
    input_tokens: int | None
    output_tokens: int | None
    is_error: bool
    token_logprobs: list[float] | None
    depth: int


@dataclass(frozen=True)
class TraceDetail:
    summary: TraceSummary
    spans: list[SpanDetail]  # in start order

    @property
    def path(self) -> list[str]:
        return [s.step_label for s in self.spans if s.step_type not in WRAPPER_TYPES]


@dataclass(frozen=True)
class TracePage:
    traces: list[TraceSummary]
    next_cursor: str | None


def parse_trace_id(text: str) -> bytes:
    try:
        trace_id = bytes.fromhex(text)
    except ValueError:
        trace_id = b""
    if len(trace_id) != 16:
        raise InvalidRequestError("invalid_trace_id", "trace id must be 32 hex characters")
    return trace_id


def _duration_ms(start: datetime, end: datetime | None) -> float | None:
    if end is None or end < start:
        return None
    return round((end - start).total_seconds() * 1000, 3)


def _summary(row: Any) -> TraceSummary:
    return TraceSummary(
        trace_id=row.trace_id.hex(),
        agent_name=row.agent_name,
        agent_version=row.agent_version,
        service_name=row.service_name,
        root_name=row.root_name,
        has_root=row.root_span_id is not None,
        start_time=row.start_time,
        end_time=row.end_time,
        duration_ms=_duration_ms(row.start_time, row.end_time),
        span_count=row.span_count,
        error_count=row.error_count,
        finding_count=row.finding_count,
        status=row.status,
    )


def _encode_cursor(summary: TraceSummary, row_id: int) -> str:
    raw = f"{summary.start_time.isoformat()}|{row_id}".encode()
    return base64.urlsafe_b64encode(raw).decode()


def _decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        start, row_id = base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
        return datetime.fromisoformat(start), int(row_id)
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequestError("invalid_cursor", "cursor is not one this API issued") from None


def list_traces(
    connection: Connection,
    *,
    project_id: int,
    agent: str | None = None,
    status: str | None = None,
    start_from: datetime | None = None,
    start_to: datetime | None = None,
    finding_kind: str | None = None,
    rule_id: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> TracePage:
    """Newest first, keyset-paginated on (start_time, id). `finding_kind` and `rule_id`
    keep the traces with at least one such finding."""
    limit = max(1, min(limit, MAX_PAGE_SIZE))
    conditions = [traces.c.project_id == project_id]
    if finding_kind or rule_id:
        conditions.append(_has_finding(project_id, finding_kind, rule_id))
    if agent:
        conditions.append(traces.c.agent_name == agent)
    if status:
        conditions.append(traces.c.status == status)
    if start_from:
        conditions.append(traces.c.start_time >= start_from)
    if start_to:
        conditions.append(traces.c.start_time < start_to)
    if cursor:
        after_start, after_id = _decode_cursor(cursor)
        conditions.append(tuple_(traces.c.start_time, traces.c.id) < tuple_(after_start, after_id))
    query = (
        select(traces)
        .where(and_(*conditions))
        .order_by(traces.c.start_time.desc(), traces.c.id.desc())
        .limit(limit + 1)
    )
    rows = connection.execute(query).all()
    summaries = [_summary(row) for row in rows[:limit]]
    next_cursor = _encode_cursor(summaries[-1], rows[limit - 1].id) if len(rows) > limit else None
    return TracePage(traces=summaries, next_cursor=next_cursor)


def _has_finding(project_id: int, kind: str | None, rule_id: str | None) -> ColumnElement[bool]:
    """Traces with such a finding, read from the findings side: a rare kind then costs
    its few findings instead of a walk over every trace."""
    match = [findings.c.project_id == project_id]
    if kind:
        match.append(findings.c.kind == kind)
    if rule_id:
        match.append(findings.c.rule_id == rule_id)
    return traces.c.id.in_(select(findings.c.trace_rowid).where(*match))


# One index probe per agent (a "loose index scan"), not a read of every trace.
_AGENT_NAMES = text("""
WITH RECURSIVE agent AS (
    (SELECT agent_name FROM traces WHERE project_id = :project_id
     ORDER BY agent_name LIMIT 1)
    UNION ALL
    SELECT (SELECT t.agent_name FROM traces AS t
            WHERE t.project_id = :project_id AND t.agent_name > agent.agent_name
            ORDER BY t.agent_name LIMIT 1)
    FROM agent WHERE agent.agent_name IS NOT NULL
)
SELECT agent_name FROM agent WHERE agent_name IS NOT NULL
""")


def list_agents(connection: Connection, *, project_id: int) -> list[str]:
    """The names of the project's agents, in order."""
    return list(connection.execute(_AGENT_NAMES, {"project_id": project_id}).scalars())


def get_trace(connection: Connection, *, project_id: int, trace_id: bytes) -> TraceDetail | None:
    row = connection.execute(
        select(traces).where(traces.c.project_id == project_id, traces.c.trace_id == trace_id)
    ).first()
    if row is None:
        return None
    span_rows = connection.execute(
        select(spans)
        .where(spans.c.project_id == project_id, spans.c.trace_id == trace_id)
        .order_by(spans.c.start_time_ns, spans.c.id)
    ).all()
    return TraceDetail(summary=_summary(row), spans=_span_details(span_rows))


def _span_details(rows: Sequence[Any]) -> list[SpanDetail]:
    """Spans in start order. Clocks often round to the millisecond, so for equal starts a
    parent comes before its children and, among siblings, the one that ended first."""
    known = {row.span_id for row in rows}
    parents = {row.span_id: row.parent_span_id for row in rows}
    details = [span_detail(row, known=known, depth=_depth(row.span_id, parents)) for row in rows]
    return sorted(details, key=_start_order)


def _start_order(span: SpanDetail) -> tuple[int, int, bool, int]:
    ended = span.end_time_ns is not None
    return (span.start_time_ns, span.depth, not ended, span.end_time_ns or 0)


def _depth(span_id: bytes, parents: dict[bytes, bytes | None]) -> int:
    depth = 0
    seen = {span_id}
    parent = parents.get(span_id)
    while parent is not None and parent in parents and parent not in seen:
        seen.add(parent)
        depth += 1
        parent = parents[parent]
    return depth


def span_detail(row: Any, *, known: set[bytes], depth: int) -> SpanDetail:
    """One span row as a SpanDetail; `known` holds the span ids stored for its trace."""
    end = row.end_time_ns
    duration = (
        round((end - row.start_time_ns) / 1e6, 6)
        if end is not None and end >= row.start_time_ns
        else None
    )
    parent = row.parent_span_id
    return SpanDetail(
        span_id=row.span_id.hex(),
        parent_span_id=parent.hex() if parent else None,
        has_missing_parent=parent is not None and parent not in known,
        name=row.name,
        kind=row.kind,
        start_time_ns=row.start_time_ns,
        end_time_ns=end,
        duration_ms=duration,
        status_code=row.status_code,
        status_message=row.status_message,
        attributes=row.attributes,
        events=row.events,
        links=row.links,
        resource=row.resource,
        scope=row.scope,
        step_type=row.step_type,
        step_label=row.step_label,
        step_name=row.step_name,
        tool_name=row.tool_name,
        tool_arguments=row.tool_arguments,
        tool_result=row.tool_result,
        model=row.model,
        input_tokens=row.input_tokens,
        output_tokens=row.output_tokens,
        is_error=row.is_error,
        token_logprobs=row.token_logprobs,
        depth=depth,
    )
