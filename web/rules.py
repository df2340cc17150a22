"""Rules pages: agents and their rules versions; view, edit, dry run and save a rules file."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from pathwatch.server.analysis.rules import RulesFileError, load_rules
from pathwatch.server.queries import rules as rule_queries
from pathwatch.server.queries import traces as trace_queries
from pathwatch.server.rules_dry_run import DRY_RUN_MAX_TRACES, DryRun, dry_run_rules
from pathwatch.web import views
from pathwatch.web.csrf import CSRF_FIELD, csrf_problem, csrf_token, set_csrf_cookie
from pathwatch.web.pages import error_page, path_segment, render_page

MAX_RULES_BYTES = 256 * 1024
DEFAULT_DRY_RUN_TRACES = 50
STARTER_RULES = """\
version: 1
rules:
  - id: example-no-shell
    kind: never
    severity: error
    match: {type: tool, name: "shell*"}
"""

router = APIRouter(include_in_schema=False)


@dataclass(frozen=True)
class AgentRules:
    """One row of the rules list: an agent seen in traces or with rules, and its current
    rules version (None when it has none yet)."""

    agent_name: str
    version: int | None
    saved: str


@dataclass(frozen=True)
class DryRunTraceView:
    trace_id: str
    findings: list[views.FindingView]


@dataclass(frozen=True)
class DryRunView:
    traces_checked: int
    flagged: list[DryRunTraceView]


def dry_run_view(result: DryRun) -> DryRunView:
    flagged = [
        DryRunTraceView(
            trace_id=checked.trace_id,
            findings=[views.finding_view(f, labels=checked.step_labels) for f in checked.findings],
        )
        for checked in result.flagged
    ]
    return DryRunView(traces_checked=result.traces_checked, flagged=flagged)


@router.get("/rules", response_class=HTMLResponse)
def rules_list_page(request: Request) -> HTMLResponse:
    project_id = request.app.state.project_id
    with request.app.state.engine.connect() as connection:
        agents = trace_queries.list_agents(connection, project_id=project_id)
        current = {
            r.agent_name: r
            for r in rule_queries.current_rule_sets(connection, project_id=project_id)
        }
    rows = [
        AgentRules(
            agent_name=name,
            version=current[name].version if name in current else None,
            saved=views.format_time(current[name].created_at) if name in current else "—",
        )
        for name in sorted(set(agents) | set(current))
    ]
    return render_page(request, "rules_list.html", {"agents": rows})


@router.get("/rules/{agent:path}", response_class=HTMLResponse)
def rules_page(
    request: Request, agent: str, version: int | None = None, saved: int | None = None
) -> HTMLResponse:
    with request.app.state.engine.connect() as connection:
        versions = rule_queries.rule_set_versions(
            connection, project_id=request.app.state.project_id, agent=agent
        )
    shown = next((v for v in versions if v.version == version), None) if version else None
    if version is not None and shown is None:
        return error_page(request, f"This agent has no rules version {version}.", status_code=404)
    shown = shown or (versions[0] if versions else None)
    context = {
        "body": shown.body if shown else STARTER_RULES,
        "shown_version": shown.version if shown else None,
        "saved": saved,
    }
    return _rules_page(request, agent, versions, context)


@router.post("/rules/{agent:path}", response_class=HTMLResponse)
def post_rules(
    request: Request,
    agent: str,
    body: str = Form(""),
    action: str = Form(""),
    last: int = Form(DEFAULT_DRY_RUN_TRACES, ge=1, le=DRY_RUN_MAX_TRACES),
    token: str = Form("", alias=CSRF_FIELD),
) -> Response:
    """Dry run or save the submitted rules file (a save is a new version). Refused with a
    403 page unless the form came from our own page with this browser's token."""
    problem = csrf_problem(request, token)
    if problem is not None:
        return error_page(request, f"Form refused: {problem}.", status_code=403)
    if action not in ("dry-run", "save"):
        return error_page(request, "Choose dry run or save.", status_code=422)
    if len(body.encode()) > MAX_RULES_BYTES:
        return error_page(
            request, f"A rules file is at most {MAX_RULES_BYTES} bytes.", status_code=422
        )

    context: dict[str, Any] = {"body": body, "shown_version": None, "saved": None, "last": last}
    try:
        rules = load_rules(body, source=f"rules of {agent}")
    except RulesFileError as error:
        context["problems"] = list(error.problems)
        return _rules_page(request, agent, None, context, status_code=422)
    if action == "save":
        return _save(request, agent, body)

    with request.app.state.engine.connect() as connection:
        result = dry_run_rules(
            connection, project_id=request.app.state.project_id, agent=agent, rules=rules, last=last
        )
    context["dry_run"] = dry_run_view(result)
    return _rules_page(request, agent, None, context)


def _save(request: Request, agent: str, body: str) -> Response:
    with request.app.state.engine.begin() as connection:
        version = rule_queries.save_rule_set(
            connection, project_id=request.app.state.project_id, agent=agent, body=body
        )
    # Post/redirect/get: a reload of the page after saving does not save again.
    return RedirectResponse(f"/rules/{path_segment(agent)}?saved={version}", status_code=303)


def _rules_page(
    request: Request,
    agent: str,
    versions: list[rule_queries.RuleSetRead] | None,
    context: dict[str, Any],
    *,
    status_code: int = 200,
) -> HTMLResponse:
    if versions is None:
        with request.app.state.engine.connect() as connection:
            versions = rule_queries.rule_set_versions(
                connection, project_id=request.app.state.project_id, agent=agent
            )
    token = csrf_token(request)
    full: dict[str, Any] = {
        "agent": agent,
        "versions": versions,
        "csrf_field": CSRF_FIELD,
        "csrf_token": token,
        "problems": [],
        "dry_run": None,
        "last": DEFAULT_DRY_RUN_TRACES,
        "max_last": DRY_RUN_MAX_TRACES,
        **context,
    }
    response = render_page(request, "rules.html", full, status_code=status_code)
    set_csrf_cookie(request, response, token)
    return response
