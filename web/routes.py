"""Dashboard routes: the traces list, one trace, a step's details, static files, error pages."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.exception_handlers import (
    http_exception_handler,
    request_validation_exception_handler,
)
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from pathwatch.server.errors import InvalidRequestError
from pathwatch.server.models import TRACE_STATUSES
from pathwatch.server.queries import dashboard as dashboard_queries
from pathwatch.server.queries import findings as finding_queries
from pathwatch.server.queries import traces as trace_queries
from pathwatch.web import charts, views
from pathwatch.web import rules as rules_pages
from pathwatch.web.filters import LAST_WINDOWS, FilterError, TraceFilters, parse_filters
from pathwatch.web.pages import PLOTLY_JS, PLOTLY_JS_URL, WEB_DIR, error_page, render_page

PAGE_SIZE = 50
SPAN_ID_PATTERN = re.compile(r"[0-9a-fA-F]{16}")
# Paths that answer machines: errors there stay JSON (or plain), as the API documents.
NON_PAGE_PREFIXES = ("/api/", "/v1/", "/static/", "/healthz")

router = APIRouter(include_in_schema=False)


def mount_dashboard(app: FastAPI) -> None:
    """Mount the dashboard's pages, static files and HTML error pages on `app`."""
    app.include_router(router)
    app.include_router(rules_pages.router)
    app.mount("/static", StaticFiles(directory=WEB_DIR / "static"), name="static")
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)


def _is_page(request: Request) -> bool:
    return not request.url.path.startswith(NON_PAGE_PREFIXES)


async def _http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, StarletteHTTPException)
    if not _is_page(request):
        return await http_exception_handler(request, error)
    message = "No page at this address." if error.status_code == 404 else str(error.detail)
    return error_page(request, message, status_code=error.status_code)


async def _validation_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, RequestValidationError)
    if not _is_page(request):
        return await request_validation_exception_handler(request, error)
    fields = ", ".join(str(problem["loc"][-1]) for problem in error.errors())
    return error_page(
        request, f"This address has a value the page cannot use: {fields}.", status_code=422
    )


@router.get(PLOTLY_JS_URL)
def plotly_js() -> FileResponse:
    # The version is in the URL, so the file can be cached for good.
    return FileResponse(
        PLOTLY_JS,
        media_type="text/javascript",
        headers={"Cache-Control": "public, max-age=31536000, immutable"},
    )


@router.get("/", response_class=HTMLResponse)
@router.get("/traces", response_class=HTMLResponse)
def traces_page(
    request: Request,
    agent: str = "",
    status: str = "",
    last: str = "",
    start_from: str = Query("", alias="from"),
    start_to: str = Query("", alias="to"),
    finding: str = "",
    rule: str = "",
    cursor: str = "",
) -> HTMLResponse:
    filters = TraceFilters(
        agent=agent,
        status=status,
        last=last,
        start_from=start_from,
        start_to=start_to,
        finding=finding,
        rule=rule,
        cursor=cursor,
    )
    context: dict[str, Any] = {
        "filters": filters,
        "statuses": TRACE_STATUSES,
        "windows": tuple(LAST_WINDOWS),
        "kind_counts": [],
        "kinds_by_trace": {},
    }
    project_id = request.app.state.project_id
    with request.app.state.engine.connect() as connection:
        context["agents"] = trace_queries.list_agents(connection, project_id=project_id)
        context["rule_ids"] = dashboard_queries.rule_ids_in_findings(
            connection, project_id=project_id
        )
        try:
            query = parse_filters(filters, now=datetime.now(tz=UTC))
            page = trace_queries.list_traces(
                connection, project_id=project_id, limit=PAGE_SIZE, **vars(query)
            )
        except (FilterError, InvalidRequestError) as error:
            context.update(error=str(error), traces=[], next_cursor=None)
            return render_page(request, "traces.html", context, status_code=422)
        context.update(_finding_context(connection, project_id, query, page.traces))
    context.update(error=None, traces=page.traces, next_cursor=page.next_cursor)
    return render_page(request, "traces.html", context)


def _finding_context(
    connection: Any, project_id: int, query: Any, listed: list[trace_queries.TraceSummary]
) -> dict[str, Any]:
    """Counts per finding kind for the filters, and each listed trace's kinds."""
    counts = dashboard_queries.finding_count_by_kind(
        connection,
        project_id=project_id,
        agent=query.agent,
        status=query.status,
        start_from=query.start_from,
        start_to=query.start_to,
        rule_id=query.rule_id,
    )
    with_findings = [t.trace_id for t in listed if t.finding_count]
    kinds = dashboard_queries.finding_kinds_by_trace(
        connection, project_id=project_id, trace_ids=with_findings
    )
    return {
        "kind_counts": counts,
        "kinds_by_trace": {trace_id: views.kinds_text(k) for trace_id, k in kinds.items()},
    }


def _trace_key(trace_id: str) -> bytes | None:
    try:
        return trace_queries.parse_trace_id(trace_id)
    except InvalidRequestError:
        return None


@router.get("/traces/{trace_id}", response_class=HTMLResponse)
def trace_page(request: Request, trace_id: str, step: str = "") -> HTMLResponse:
    key = _trace_key(trace_id)
    if key is None:
        return error_page(request, "A trace id is 32 hex characters.", status_code=422)
    project_id = request.app.state.project_id
    with request.app.state.engine.connect() as connection:
        detail = trace_queries.get_trace(connection, project_id=project_id, trace_id=key)
        found = finding_queries.findings_for_trace(connection, project_id=project_id, trace_id=key)
    if detail is None:
        return error_page(request, "No trace with this id in this project.", status_code=404)

    labels = {span.span_id: span.step_label for span in detail.spans}
    finding_list = [views.finding_view(f, labels=labels) for f in found]
    by_step = views.findings_by_step(finding_list)
    selected = next((s for s in detail.spans if s.span_id == step.lower()), None)
    context = {
        "trace": detail.summary,
        "spans": detail.spans,
        "path": detail.path,
        "findings": finding_list,
        "findings_by_step": by_step,
        "figure": charts.waterfall_figure(detail.spans, findings_by_span=by_step),
        "step": views.step_view(selected) if selected else None,
        "step_findings": by_step.get(selected.span_id, []) if selected else [],
        "max_labelled_rows": charts.MAX_LABELLED_ROWS,
    }
    return render_page(request, "trace.html", context)


@router.get("/traces/{trace_id}/steps/{span_id}", response_class=HTMLResponse)
def step_fragment(request: Request, trace_id: str, span_id: str) -> HTMLResponse:
    """The step panel alone, for the trace page to swap in when a step is clicked; reads
    the one span and the trace's findings, not the whole trace."""
    key = _trace_key(trace_id)
    if key is None or not SPAN_ID_PATTERN.fullmatch(span_id):
        return error_page(
            request, "A trace id is 32 and a span id 16 hex characters.", status_code=422
        )
    project_id = request.app.state.project_id
    with request.app.state.engine.connect() as connection:
        span = dashboard_queries.get_span(
            connection, project_id=project_id, trace_id=key, span_id=bytes.fromhex(span_id)
        )
        found = finding_queries.findings_for_trace(connection, project_id=project_id, trace_id=key)
    if span is None:
        return error_page(request, "No step with this id in this trace.", status_code=404)

    labels = {span.span_id: span.step_label}
    pinned = [views.finding_view(f, labels=labels) for f in found if span.span_id in f.span_ids]
    context = {"step": views.step_view(span), "step_findings": pinned}
    return render_page(request, "step.html", context)
