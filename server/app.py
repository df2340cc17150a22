"""The ASGI application: OTLP/HTTP receiver, JSON API and dashboard on one app."""

from __future__ import annotations

import logging
import os

from fastapi import FastAPI, Request
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.responses import JSONResponse
from sqlalchemy import Engine
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from pathwatch.collector import http as otlp_http
from pathwatch.server.analysis.rules import RulesFileError
from pathwatch.server.api import findings as findings_api
from pathwatch.server.api import rules as rules_api
from pathwatch.server.api import traces as traces_api
from pathwatch.server.errors import PathwatchError

logger = logging.getLogger(__name__)


LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")


class RefuseNulMiddleware:
    """Refuse a URL that holds U+0000: no name or filter can contain it (PostgreSQL text
    cannot), and passing it on would end as a database error."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (
            b"%00" in scope.get("query_string", b"")
            or b"%00" in scope.get("raw_path", b"")
            or "\x00" in scope.get("path", "")
        ):
            response = JSONResponse(
                {"error": {"code": "nul_in_url", "message": "the URL contains U+0000"}},
                status_code=400,
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def allowed_hosts_for(bind_host: str) -> list[str]:
    """Host headers the dashboard and API answer: PATHWATCH_ALLOWED_HOSTS, else the
    loopback names when bound to loopback (a page on another site cannot reach the API
    through DNS rebinding), else any."""
    configured = os.environ.get("PATHWATCH_ALLOWED_HOSTS", "")
    if configured.strip():
        return [host.strip() for host in configured.split(",") if host.strip()]
    if bind_host in LOOPBACK_HOSTS:
        return list(LOOPBACK_HOSTS)
    return ["*"]


def create_app(
    *,
    engine: Engine,
    receiver: otlp_http.Receiver | None,
    project_id: int,
    with_web: bool = True,
    allowed_hosts: list[str] | None = None,
) -> FastAPI:
    """The main port's app: the OTLP/HTTP receiver when `receiver` is given (collector
    role), the API and the dashboard when `with_web` (web role), /healthz always."""
    app = FastAPI(
        title="Pathwatch",
        version="0.1.0",
        docs_url=None,
        openapi_url="/api/v1/openapi.json",
        redoc_url=None,
    )
    # Compress large replies (plotly.js, big traces) for clients that accept gzip.
    app.add_middleware(GZipMiddleware, minimum_size=4096)
    app.add_middleware(RefuseNulMiddleware)
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts or ["*"])
    app.state.engine = engine
    app.state.receiver = receiver
    app.state.project_id = project_id
    if receiver is not None:
        app.include_router(otlp_http.router)
    if with_web:
        app.include_router(traces_api.router)
        app.include_router(findings_api.router)
        app.include_router(rules_api.router)

    @app.exception_handler(PathwatchError)
    async def pathwatch_error(_request: Request, error: PathwatchError) -> JSONResponse:
        return JSONResponse(
            {"error": {"code": error.code, "message": error.message}},
            status_code=error.http_status,
        )

    @app.exception_handler(RulesFileError)
    async def rules_file_error(_request: Request, error: RulesFileError) -> JSONResponse:
        problems = [{"line": p.line, "path": p.path, "message": p.message} for p in error.problems]
        return JSONResponse(
            {"error": {"code": error.code, "message": error.message, "problems": problems}},
            status_code=error.http_status,
        )

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str | int]:
        """Liveness, and how many exports are being received right now."""
        health: dict[str, str | int] = {"status": "ok"}
        if receiver is not None:
            health["exports_in_flight"] = receiver.gate.inflight
        return health

    if with_web:
        from pathwatch.web.routes import mount_dashboard

        mount_dashboard(app)
    return app


def create_otlp_app(*, receiver: otlp_http.Receiver) -> FastAPI:
    """The app for the standard OTLP/HTTP port: the receiver alone."""
    app = FastAPI(title="Pathwatch OTLP/HTTP", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.receiver = receiver
    app.include_router(otlp_http.router)
    return app
