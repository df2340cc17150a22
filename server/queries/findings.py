"""Findings: replaced per trace by analysis, listed and counted for the API and dashboard."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Connection, delete, func, insert, select

from pathwatch.server.analysis.findings import Finding
from pathwatch.server.models import findings, traces


@dataclass(frozen=True)
class FindingRead:
    trace_id: str
    agent_name: str
    kind: str
    rule_id: str | None
    rule_version: int | None
    severity: str
    message: str
    span_ids: list[str]
    created_at: datetime


@dataclass(frozen=True)
class FindingCount:
    agent_name: str
    kind: str
    count: int


@dataclass(frozen=True)
class TraceFindings:
    """The findings of one analysis of one trace."""

    project_id: int
    trace_rowid: int
    agent_name: str
    findings: Sequence[Finding]


def replace_findings(connection: Connection, analysed: Sequence[TraceFindings]) -> None:
    """Swap each trace's findings for its new analysis' (late spans re-analyse a trace)."""
    if not analysed:
        return
    rowids = [trace.trace_rowid for trace in analysed]
    connection.execute(delete(findings).where(findings.c.trace_rowid.in_(rowids)))
    rows = [
        {
            "project_id": trace.project_id,
            "trace_rowid": trace.trace_rowid,
            "agent_name": trace.agent_name,
            "kind": f.kind,
            "rule_id": f.rule_id,
            "rule_version": f.rule_version,
            "severity": f.severity,
            "message": f.message,
            "span_ids": list(f.span_ids),
        }
        for trace in analysed
        for f in trace.findings
    ]
    if rows:
        connection.execute(insert(findings), rows)


def findings_for_trace(
    connection: Connection, *, project_id: int, trace_id: bytes
) -> list[FindingRead]:
    query = (
        select(findings, traces.c.trace_id)
        .join(traces, traces.c.id == findings.c.trace_rowid)
        .where(traces.c.project_id == project_id, traces.c.trace_id == trace_id)
        .order_by(findings.c.id)
    )
    return [_read(row) for row in connection.execute(query)]


@dataclass(frozen=True)
class FindingFilter:
    """Which findings to list or count; None means any."""

    agent: str | None = None
    kind: str | None = None
    rule_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def conditions(self, project_id: int) -> list[ColumnElement[bool]]:
        conditions = [findings.c.project_id == project_id]
        if self.agent:
            conditions.append(findings.c.agent_name == self.agent)
        if self.kind:
            conditions.append(findings.c.kind == self.kind)
        if self.rule_id:
            conditions.append(findings.c.rule_id == self.rule_id)
        if self.since:
            conditions.append(findings.c.created_at >= self.since)
        if self.until:
            conditions.append(findings.c.created_at < self.until)
        return conditions


def list_findings(
    connection: Connection,
    *,
    project_id: int,
    where: FindingFilter,
    limit: int = 100,
) -> list[FindingRead]:
    """Newest first."""
    query = (
        select(findings, traces.c.trace_id)
        .join(traces, traces.c.id == findings.c.trace_rowid)
        .where(*where.conditions(project_id))
        .order_by(findings.c.created_at.desc(), findings.c.id.desc())
        .limit(limit)
    )
    return [_read(row) for row in connection.execute(query)]


def finding_count_by_agent_and_kind(
    connection: Connection, *, project_id: int, where: FindingFilter
) -> list[FindingCount]:
    query = (
        select(findings.c.agent_name, findings.c.kind, func.count().label("count"))
        .where(*where.conditions(project_id))
        .group_by(findings.c.agent_name, findings.c.kind)
        .order_by(findings.c.agent_name, findings.c.kind)
    )
    return [FindingCount(r.agent_name, r.kind, r[2]) for r in connection.execute(query)]


def _read(row: object) -> FindingRead:
    return FindingRead(
        trace_id=row.trace_id.hex(),  # type: ignore[attr-defined]
        agent_name=row.agent_name,  # type: ignore[attr-defined]
        kind=row.kind,  # type: ignore[attr-defined]
        rule_id=row.rule_id,  # type: ignore[attr-defined]
        rule_version=row.rule_version,  # type: ignore[attr-defined]
        severity=row.severity,  # type: ignore[attr-defined]
        message=row.message,  # type: ignore[attr-defined]
        span_ids=list(row.span_ids),  # type: ignore[attr-defined]
        created_at=row.created_at,  # type: ignore[attr-defined]
    )
