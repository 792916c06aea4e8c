"""The FastAPI application: API, console, /healthz, /metrics and /docs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import PlainTextResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from starlette.exceptions import HTTPException as StarletteHTTPException

from core.runtime import Runtime
from infra.onboarding import syslog_listen_addresses
from portal import (
    alerts_api,
    api,
    compliance_api,
    drills_api,
    net_api,
    soc_api,
    web,
    web_alerts,
    web_compliance,
    web_net,
)
from portal.deps import LoginRequired, MfaEnrollmentRequired, PasswordChangeRequired
from portal.i18n import check_catalogs
from portal.maintenance import maintenance_loop
from portal.metrics import Metrics, MetricsMiddleware
from portal.rbac import policy
from portal.tickets import api as tickets_api
from portal.tickets import web as tickets_web
from soc.metrics import SocMetrics
from soc.service import SocServices

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "frame-ancestors 'none'",
}
# Swagger UI and ReDoc start from inline scripts; only they may run one. Their files come from the
# fastapi-offline package, not a CDN, because the city's networks are closed.
DOCS_CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
            "script-src 'self' 'unsafe-inline'; frame-ancestors 'none'")


def create_app(rt: Runtime, *, soc_listeners: bool = False) -> FastAPI:
    """Build the service around an opened runtime (database migrated, keys loaded).

    The SOC spool and its consumer run with the app; the syslog listeners only when ``soc_listeners``
    (``yunshu up``), so tests do not all bind the syslog port.
    """
    policy()  # validate data files at start-up, not at the first request
    check_catalogs()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = SocServices(rt, app.state.soc_metrics, listeners=soc_listeners,
                               syslog_hosts=syslog_listen_addresses(rt) if soc_listeners else None)
        await services.start()
        app.state.soc = services
        # the running service (`yunshu up`) also escalates, reminds and reclaims tickets on a timer
        maintenance = asyncio.create_task(maintenance_loop(rt)) if soc_listeners else None
        try:
            yield
        finally:
            if maintenance is not None:
                maintenance.cancel()
            await services.stop()

    app = FastAPIOffline(title="云枢 Yunshu", version="0.1.0", lifespan=lifespan,
                         description="政务云控制平面 API / control plane of the city's government cloud")
    app.state.runtime = rt
    app.state.metrics = Metrics(rt.sessions)
    app.state.soc_metrics = SocMetrics(app.state.metrics.registry)
    app.add_middleware(MetricsMiddleware)

    @app.middleware("http")
    async def security_headers(request: Request, call_next):  # type: ignore[no-untyped-def]
        if b"%00" in request.scope.get("raw_path", b"") or b"%00" in request.scope.get("query_string", b""):
            return PlainTextResponse("NUL bytes are not allowed in URLs / URL 中不允许 NUL 字符", status_code=400)
        response: Response = await call_next(request)
        if request.url.path in ("/docs", "/redoc"):
            response.headers.setdefault("Content-Security-Policy", DOCS_CSP)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if rt.settings.portal.tls_enabled:
            response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        if not request.url.path.startswith("/static"):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    app.mount("/static", StaticFiles(directory=str(Path(__file__).with_name("static"))), name="static")


    @app.get("/healthz", tags=["ops"])
    def healthz() -> dict[str, str]:
        """Liveness and database reachability."""
        with rt.sessions() as session:
            session.execute(text("SELECT 1"))
        return {"status": "ok", "database": rt.engine.dialect.name}

    @app.get("/metrics", tags=["ops"])
    def metrics() -> PlainTextResponse:
        """Prometheus metrics."""
        return PlainTextResponse(generate_latest(app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.exception_handler(LoginRequired)
    async def to_login(request: Request, _exc: LoginRequired) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?{urlencode({'next': target})}", status_code=303)

    @app.exception_handler(PasswordChangeRequired)
    async def to_password(_request: Request, _exc: PasswordChangeRequired) -> Response:
        return RedirectResponse("/account/password", status_code=303)

    @app.exception_handler(MfaEnrollmentRequired)
    async def to_mfa(_request: Request, _exc: MfaEnrollmentRequired) -> Response:
        return RedirectResponse("/account/mfa", status_code=303)

    @app.exception_handler(StarletteHTTPException)  # FastAPI's HTTPException and unknown URLs alike
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if request.url.path.startswith("/api") or "text/html" not in request.headers.get("accept", ""):
            return await http_exception_handler(request, exc)
        return web.render(request, "error.html", {"status": exc.status_code, "detail": exc.detail, "me": None},
                          status_code=exc.status_code)

    app.include_router(api.router)
    app.include_router(soc_api.router)
    app.include_router(alerts_api.router)
    app.include_router(drills_api.router)
    app.include_router(web.router)
    app.include_router(web_alerts.router)
    app.include_router(net_api.router)
    app.include_router(web_net.router)
    app.include_router(tickets_api.router)
    app.include_router(tickets_web.router)
    app.include_router(compliance_api.router)
    app.include_router(web_compliance.router)
    return app
