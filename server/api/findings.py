"""GET /api/v1/findings: findings listed and counted per agent, kind and time window."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel

from pathwatch.server.queries import findings as finding_queries
from pathwatch.server.queries.findings import FindingCount, FindingRead

router = APIRouter(prefix="/api/v1", tags=["findings"])


class FindingListRead(BaseModel):
    findings: list[FindingRead]
    counts: list[FindingCount]


@router.get("/findings", response_model=FindingListRead)
def get_findings(
    request: Request,
    agent: str | None = None,
    kind: str | None = None,
    rule: str | None = None,
    since: datetime | None = Query(None, alias="from"),
    until: datetime | None = Query(None, alias="to"),
    limit: int = Query(100, ge=1, le=1000),
) -> FindingListRead:
    where = finding_queries.FindingFilter(
        agent=agent, kind=kind, rule_id=rule, since=since, until=until
    )
    with request.app.state.engine.connect() as connection:
        project_id = request.app.state.project_id
        listed = finding_queries.list_findings(
            connection, project_id=project_id, where=where, limit=limit
        )
        counts = finding_queries.finding_count_by_agent_and_kind(
            connection, project_id=project_id, where=where
        )
    return FindingListRead(
        findings=listed,
        counts=counts,
    )
