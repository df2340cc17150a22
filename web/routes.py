"""Dashboard routes: the traces list, one trace, a step's details, and the static files."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
import plotly
from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from pathwatch.server.errors import InvalidRequestError
from pathwatch.server.models import TRACE_STATUSES
from pathwatch.server.queries import traces as trace_queries
from pathwatch.web import charts, views
from pathwatch.web.filters import LAST_WINDOWS, FilterError, TraceFilters, parse_filters

WEB_DIR = Path(__file__).parent
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
PLOTLY_JS_URL = f"/static/plotly-{plotly.__version__}.min.js"
PAGE_SIZE = 50


def _plotly_style_ids() -> tuple[str, ...]:
    """Ids of the <style> elements plotly.js injects at load unless the page has them.

    The bundle adds MapLibre's CSS inline, which our style-src refuses (and a console
    error follows). An element with the same id in the page makes plotly.js skip it;
    the dashboard draws no maps.
    """
    bundle = PLOTLY_JS.read_text(encoding="utf-8", errors="replace")
    return tuple(sorted(set(re.findall(r'getElementById\("([0-9a-f]{64})"\)', bundle))))


# Scripts only from our own origin: no inline script, no eval. Plotly adds its rules
# through an empty <style> element and the CSSOM; the hash admits that empty element
# (sha256 of "") and nothing else, so no inline style text can apply.
EMPTY_STYLE_HASH = "'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='"
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        f"style-src 'self' {EMPTY_STYLE_HASH}",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}

templates = Jinja2Templates(
    env=jinja2.Environment(
        loader=jinja2.FileSystemLoader(WEB_DIR / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
)
templates.env.globals["plotly_js_url"] = PLOTLY_JS_URL
templates.env.globals["plotly_style_ids"] = _plotly_style_ids()
templates.env.filters["duration"] = views.format_duration
templates.env.filters["time"] = views.format_time

router = APIRouter(include_in_schema=False)


def mount_dashboard(app: FastAPI) -> None:
    """Mount the dashboard's pages and static files on `app`."""
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=WEB_DIR / "static"), name="static")


def _page(
    request: Request, template: str, context: dict[str, Any], *, status_code: int = 200
) -> HTMLResponse:
    return templates.TemplateResponse(
        request,
        template,
        context,
        status_code=status_code,
        headers=SECURITY_HEADERS,
    )


def _not_found(request: Request, message: str) -> HTMLResponse:
    return _page(request, "error.html", {"message": message}, status_code=404)


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
    cursor: str = "",
) -> HTMLResponse:
    filters = TraceFilters(
        agent=agent,
        status=status,
        last=last,
        start_from=start_from,
        start_to=start_to,
        cursor=cursor,
    )
    context: dict[str, Any] = {
        "filters": filters,
        "statuses": TRACE_STATUSES,
        "windows": tuple(LAST_WINDOWS),
    }
    engine = request.app.state.engine
    project_id = request.app.state.project_id
    with engine.connect() as connection:
        context["agents"] = trace_queries.list_agents(connection, project_id=project_id)
        try:
            query = parse_filters(filters, now=datetime.now(tz=UTC))
            page = trace_queries.list_traces(
                connection, project_id=project_id, limit=PAGE_SIZE, **vars(query)
            )
        except (FilterError, InvalidRequestError) as error:
            context.update(error=str(error), traces=[], next_cursor=None)
            return _page(request, "traces.html", context, status_code=422)
    context.update(error=None, traces=page.traces, next_cursor=page.next_cursor)
    return _page(request, "traces.html", context)


def _load_trace(request: Request, trace_id: str) -> trace_queries.TraceDetail | None:
    try:
        key = trace_queries.parse_trace_id(trace_id)
    except InvalidRequestError:
        return None
    with request.app.state.engine.connect() as connection:
        return trace_queries.get_trace(
            connection, project_id=request.app.state.project_id, trace_id=key
        )


@router.get("/traces/{trace_id}", response_class=HTMLResponse)
def trace_page(request: Request, trace_id: str, step: str = "") -> HTMLResponse:
    detail = _load_trace(request, trace_id)
    if detail is None:
        return _not_found(request, "No trace with this id in this project.")

    selected = next((s for s in detail.spans if s.span_id == step.lower()), None)
    context = {
        "trace": detail.summary,
        "spans": detail.spans,
        "path": detail.path,
        "figure": charts.waterfall_figure(detail.spans),
        "step": views.step_view(selected) if selected else None,
    }
    return _page(request, "trace.html", context)


@router.get("/traces/{trace_id}/steps/{span_id}", response_class=HTMLResponse)
def step_fragment(request: Request, trace_id: str, span_id: str) -> HTMLResponse:
    """The step panel alone, for the trace page to swap in when a step is clicked."""
    detail = _load_trace(request, trace_id)
    span = next((s for s in detail.spans if s.span_id == span_id.lower()), None) if detail else None
    if span is None:
        return _not_found(request, "No step with this id in this trace.")
    return _page(request, "step.html", {"step": views.step_view(span)})
