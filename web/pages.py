"""Page rendering shared by the dashboard's routes: templates, security headers, error pages."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
import plotly
from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from pathwatch.web import views

WEB_DIR = Path(__file__).parent
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
PLOTLY_JS_URL = f"/static/plotly-{plotly.__version__}.min.js"
ERROR_TITLES = {403: "Refused", 404: "Not found", 405: "Not allowed", 422: "Cannot use this"}


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


def path_segment(text: str) -> str:
    """`text` as one URL path segment: every reserved character, `/` included, encoded."""
    return quote(text, safe="")


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
templates.env.filters["segment"] = path_segment


def render_page(
    request: Request, template: str, context: dict[str, Any], *, status_code: int = 200
) -> HTMLResponse:
    return templates.TemplateResponse(
        request,
        template,
        context,
        status_code=status_code,
        headers=SECURITY_HEADERS,
    )


def error_page(request: Request, message: str, *, status_code: int) -> HTMLResponse:
    title = ERROR_TITLES.get(status_code, "Error")
    context = {"title": title, "message": message, "status_code": status_code}
    return render_page(request, "error.html", context, status_code=status_code)
