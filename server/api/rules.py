"""Rules under /api/v1/rules: each agent's YAML rule set, its versions, and dry runs."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel

from pathwatch.server.analysis.rules import load_rules
from pathwatch.server.errors import NotFoundError
from pathwatch.server.queries import rules as rule_queries
from pathwatch.server.rules_dry_run import DRY_RUN_MAX_TRACES, dry_run_rules

router = APIRouter(prefix="/api/v1/rules", tags=["rules"])


class RuleSetRead(BaseModel):
    agent_name: str
    version: int
    body: str
    created_at: datetime


class RuleSetWrite(BaseModel):
    body: str


class DryRunFinding(BaseModel):
    kind: str
    rule_id: str | None
    severity: str
    message: str
    span_ids: list[str]


class DryRunTrace(BaseModel):
    trace_id: str
    findings: list[DryRunFinding]


class DryRunRead(BaseModel):
    agent_name: str
    traces_checked: int
    traces_flagged: int
    traces: list[DryRunTrace]


@router.get("", response_model=list[RuleSetRead])
def get_rule_sets(request: Request) -> list[RuleSetRead]:
    with request.app.state.engine.connect() as connection:
        stored = rule_queries.current_rule_sets(connection, project_id=request.app.state.project_id)
    return [RuleSetRead(**vars(r)) for r in stored]


# Agent names may hold slashes; the routes with a suffix come first.
@router.get("/{agent:path}/versions", response_model=list[RuleSetRead])
def get_rule_set_versions(request: Request, agent: str) -> list[RuleSetRead]:
    with request.app.state.engine.connect() as connection:
        stored = rule_queries.rule_set_versions(
            connection, project_id=request.app.state.project_id, agent=agent
        )
    return [RuleSetRead(**vars(r)) for r in stored]


@router.post("/{agent:path}/dry-run", response_model=DryRunRead)
def dry_run(
    request: Request,
    agent: str,
    rule_set: RuleSetWrite,
    last: int = Query(50, ge=1, le=DRY_RUN_MAX_TRACES),
) -> DryRunRead:
    """What the rules would flag on the agent's last `last` finished traces; saves nothing."""
    rules = load_rules(rule_set.body, source=f"rules of {agent}")
    with request.app.state.engine.connect() as connection:
        result = dry_run_rules(
            connection,
            project_id=request.app.state.project_id,
            agent=agent,
            rules=rules,
            last=last,
        )
    return DryRunRead(
        agent_name=agent,
        traces_checked=result.traces_checked,
        traces_flagged=len(result.flagged),
        traces=[
            DryRunTrace(
                trace_id=checked.trace_id,
                findings=[
                    DryRunFinding(
                        kind=f.kind,
                        rule_id=f.rule_id,
                        severity=f.severity,
                        message=f.message,
                        span_ids=list(f.span_ids),
                    )
                    for f in checked.findings
                ],
            )
            for checked in result.traces
        ],
    )


@router.get("/{agent:path}", response_model=RuleSetRead)
def get_rule_set(request: Request, agent: str) -> RuleSetRead:
    with request.app.state.engine.connect() as connection:
        stored = rule_queries.current_rule_set(
            connection, project_id=request.app.state.project_id, agent=agent
        )
    if stored is None:
        raise NotFoundError("rules_not_found", f"agent {agent!r} has no rules")
    return RuleSetRead(**vars(stored))


@router.put("/{agent:path}", response_model=RuleSetRead)
def put_rule_set(request: Request, agent: str, rule_set: RuleSetWrite) -> RuleSetRead:
    """Save a new version after checking it; a file that does not load is a 422 with
    every problem and its line."""
    load_rules(rule_set.body, source=f"rules of {agent}")
    with request.app.state.engine.begin() as connection:
        project_id = request.app.state.project_id
        rule_queries.save_rule_set(
            connection, project_id=project_id, agent=agent, body=rule_set.body
        )
        stored = rule_queries.current_rule_set(connection, project_id=project_id, agent=agent)
    assert stored is not None
    return RuleSetRead(**vars(stored))
