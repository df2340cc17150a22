"""Reads the dashboard needs beyond the API's: one step alone, finding kinds per listed trace
and per filtered list. Query functions take a connection and never commit."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Connection, and_, exists, func, literal, select

from pathwatch.server.models import findings, spans, traces
from pathwatch.server.queries.traces import SpanDetail, span_detail

# A parent chain longer than this is not walked further for a step's depth (cycles and
# absurd nesting stop here; the step panel does not show depth beyond it).
MAX_DEPTH = 256


@dataclass(frozen=True)
class KindCount:
    """How many findings of one kind, and in how many traces."""

    kind: str
    finding_count: int
    trace_count: int


def get_span(
    connection: Connection, *, project_id: int, trace_id: bytes, span_id: bytes
) -> SpanDetail | None:
    """One span of a trace with its depth and whether its parent arrived, read without
    loading the rest of the trace (three index lookups on the span key)."""
    row = connection.execute(
        select(spans).where(
            spans.c.project_id == project_id,
            spans.c.trace_id == trace_id,
            spans.c.span_id == span_id,
        )
    ).first()
    if row is None:
        return None

    ancestors = _ancestor_ids(
        connection, project_id=project_id, trace_id=trace_id, parent=row.parent_span_id
    )
    known = set(ancestors) | {row.span_id}
    return span_detail(row, known=known, depth=len(ancestors))


def _ancestor_ids(
    connection: Connection, *, project_id: int, trace_id: bytes, parent: bytes | None
) -> list[bytes]:
    """The stored ancestors of a span, nearest first, stopping at the first one missing."""
    if parent is None:
        return []
    chain = (
        select(spans.c.span_id, spans.c.parent_span_id, literal(1).label("depth"))
        .where(
            spans.c.project_id == project_id,
            spans.c.trace_id == trace_id,
            spans.c.span_id == parent,
        )
        .cte("chain", recursive=True)
    )
    step = select(spans.c.span_id, spans.c.parent_span_id, chain.c.depth + 1).where(
        spans.c.project_id == project_id,
        spans.c.trace_id == trace_id,
        spans.c.span_id == chain.c.parent_span_id,
        chain.c.depth < MAX_DEPTH,
    )
    chain = chain.union(step)
    rows = connection.execute(select(chain.c.span_id).order_by(chain.c.depth)).scalars()
    return list(rows)


def finding_kinds_by_trace(
    connection: Connection, *, project_id: int, trace_ids: Sequence[str]
) -> dict[str, dict[str, int]]:
    """For each listed trace (hex id) with findings: finding count by kind."""
    if not trace_ids:
        return {}
    query = (
        select(traces.c.trace_id, findings.c.kind, func.count().label("finding_count"))
        .join(findings, findings.c.trace_rowid == traces.c.id)
        .where(
            traces.c.project_id == project_id,
            traces.c.trace_id.in_([bytes.fromhex(t) for t in trace_ids]),
        )
        .group_by(traces.c.trace_id, findings.c.kind)
        .order_by(traces.c.trace_id, findings.c.kind)
    )
    kinds: dict[str, dict[str, int]] = {}
    for row in connection.execute(query):
        kinds.setdefault(row.trace_id.hex(), {})[row.kind] = row.finding_count
    return kinds


def finding_count_by_kind(
    connection: Connection,
    *,
    project_id: int,
    agent: str | None = None,
    status: str | None = None,
    start_from: datetime | None = None,
    start_to: datetime | None = None,
    rule_id: str | None = None,
) -> list[KindCount]:
    """Findings by kind over the traces that `list_traces` would list for the same
    filters (trace start time, not the finding's creation), most frequent first."""
    conditions = [findings.c.project_id == project_id]
    if rule_id:
        conditions.append(findings.c.rule_id == rule_id)
    if agent:
        conditions.append(findings.c.agent_name == agent)
    trace_conditions = _trace_conditions(status, start_from, start_to)
    if trace_conditions:
        conditions.append(
            exists(
                select(traces.c.id).where(traces.c.id == findings.c.trace_rowid, *trace_conditions)
            )
        )
    query = (
        select(
            findings.c.kind,
            func.count().label("finding_count"),
            func.count(findings.c.trace_rowid.distinct()).label("trace_count"),
        )
        .where(and_(*conditions))
        .group_by(findings.c.kind)
        .order_by(func.count().desc(), findings.c.kind)
    )
    return [KindCount(r.kind, r.finding_count, r.trace_count) for r in connection.execute(query)]


def _trace_conditions(
    status: str | None, start_from: datetime | None, start_to: datetime | None
) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if status:
        conditions.append(traces.c.status == status)
    if start_from:
        conditions.append(traces.c.start_time >= start_from)
    if start_to:
        conditions.append(traces.c.start_time < start_to)
    return conditions


def rule_ids_in_findings(connection: Connection, *, project_id: int) -> list[str]:
    """Every rule id that has flagged something, for the traces page's rule filter."""
    query = (
        select(findings.c.rule_id)
        .where(findings.c.project_id == project_id, findings.c.rule_id.is_not(None))
        .group_by(findings.c.rule_id)
        .order_by(findings.c.rule_id)
    )
    return [rule_id for rule_id in connection.execute(query).scalars() if rule_id is not None]
