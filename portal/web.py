"""The server-rendered web console (zh-CN by default, English switch)."""

from __future__ import annotations

import hmac
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import pyotp
from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session

from core.runtime import Runtime
from inventory.models import Department, System
from inventory.queries import (
    FILTER_FIELDS,
    SystemFilter,
    count_by,
    list_departments,
    list_systems,
    normalise_filter,
)
from inventory.vocabulary import vocabulary
from portal.deps import DB_SESSION, SESSION_COOKIE, Principal, require, runtime, web_principal
from portal.i18n import LANGUAGES, translator
from portal.rbac import policy
from portal.security import (
    AuthError,
    authenticate,
    begin_totp_enrolment,
    change_password,
    close_session,
    enroll_totp,
    open_session,
)
from portal.soc_api import build_query, health, services
from soc.store.aggregate import aggregate
from soc.store.base import HISTOGRAM_INTERVALS

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))
LANG_COOKIE = "ys_lang"
LOGIN_CSRF_COOKIE = "ys_login_csrf"
PAGE_SIZE = 50


def language(request: Request) -> str:
    wanted = request.query_params.get("lang") or request.cookies.get(LANG_COOKIE)
    if wanted in LANGUAGES:
        return wanted
    return request.app.state.runtime.settings.portal.default_language


UI_ZONE = ZoneInfo("Asia/Shanghai")


def local_time(ts: datetime | None) -> str:
    """UTC inside, Asia/Shanghai in the UI (stored naive datetimes are UTC)."""
    if ts is None:
        return "—"
    aware = ts if ts.tzinfo else ts.replace(tzinfo=UTC)
    return aware.astimezone(UI_ZONE).strftime("%Y-%m-%d %H:%M")


def local_iso(text: str | None) -> str:
    """An ECS ``@timestamp`` shown in Asia/Shanghai."""
    if not text:
        return "—"
    try:
        return local_time(datetime.fromisoformat(text.replace("Z", "+00:00")))
    except ValueError:
        return text


def render(request: Request, name: str, context: dict[str, Any], status_code: int = 200) -> HTMLResponse:
    lang = language(request)
    vocab = vocabulary()
    ctx = {
        "t": translator(lang),
        "lang": lang,
        "label": lambda enum, code: vocab.label(enum, code, lang),
        "enum_codes": lambda enum: vocab.enums[enum].codes(),
        "local_time": local_time,
        "local_iso": local_iso,
        "filter_link": filter_link,
        "role_label": lambda role: getattr(policy().roles[role], "en" if lang == "en" else "zh"),
        **context,
    }
    response = templates.TemplateResponse(request, name, ctx, status_code=status_code)
    if request.query_params.get("lang") in LANGUAGES:
        response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, samesite="strict", httponly=True)
    return response


def _cookie_secure(request: Request) -> bool:
    portal = request.app.state.runtime.settings.portal
    return portal.cookie_secure or portal.tls_enabled


def _safe_next(target: str | None) -> str:
    return target if target and target.startswith("/") and not target.startswith("//") else "/"


@router.get("/login")
def login_page(request: Request, next: str | None = None) -> HTMLResponse:
    csrf = secrets.token_urlsafe(24)
    response = render(request, "login.html", {"csrf": csrf, "next": _safe_next(next), "error": None})
    response.set_cookie(LOGIN_CSRF_COOKIE, csrf, httponly=True, samesite="strict", secure=_cookie_secure(request))
    return response


@router.post("/login")
def login(
    request: Request,
    username: str = Form(...),
    password: str = Form(...),
    csrf_token: str = Form(""),
    next: str = Form("/"),
    otp: str = Form(""),
    session: Session = DB_SESSION,
    rt: Runtime = Depends(runtime),
) -> Response:
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not expected or not hmac.compare_digest(expected, csrf_token):
        raise HTTPException(403, "CSRF token missing or wrong / CSRF 校验失败")
    policy_ = rt.settings.portal
    try:
        user = authenticate(session, rt.audit, policy_, username.strip(), password, otp=otp or None)
    except AuthError as exc:
        error = "login.locked" if exc.code == "locked" else "login.invalid"
        return render(request, "login.html", {"csrf": expected, "next": _safe_next(next), "error": error,
                                              "lock_minutes": policy_.lockout_minutes}, status_code=401)
    new = open_session(session, policy_, user, request.client.host if request.client else None)
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(SESSION_COOKIE, new.cookie_value, httponly=True, samesite="strict",
                        secure=_cookie_secure(request), max_age=policy_.session_absolute_hours * 3600)
    response.delete_cookie(LOGIN_CSRF_COOKIE)
    return response


@router.post("/logout")
def logout(request: Request, principal: Principal = Depends(web_principal), session: Session = DB_SESSION,
           rt: Runtime = Depends(runtime)) -> Response:
    close_session(session, request.cookies.get(SESSION_COOKIE, ""))
    rt.audit.append(session, actor=principal.name, action="auth.logout", object_type="user",
                    object_id=principal.name)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response


@router.get("/account/password")
def password_page(request: Request, principal: Principal = Depends(web_principal)) -> HTMLResponse:
    return render(request, "password.html", {"me": principal, "error": None})


@router.post("/account/password")
def password_change(
    request: Request,
    current: str = Form(...),
    new: str = Form(...),
    confirm: str = Form(...),
    principal: Principal = Depends(web_principal),
    session: Session = DB_SESSION,
    rt: Runtime = Depends(runtime),
) -> Response:
    error = None
    if new != confirm:
        error = "两次输入的新密码不一致 / the new passwords differ"
    else:
        try:
            with session.begin_nested():
                change_password(session, rt.audit, rt.settings.portal, principal.user, current, new,
                                principal.web_session)
        except ValueError as exc:
            error = str(exc)
    if error:
        return render(request, "password.html", {"me": principal, "error": error}, status_code=422)
    return RedirectResponse("/", status_code=303)


def _mfa_context(principal: Principal, secret: str, error: str | None) -> dict[str, Any]:
    uri = pyotp.TOTP(secret).provisioning_uri(name=principal.name, issuer_name="Yunshu")
    return {"me": principal, "secret": secret, "uri": uri, "error": error,
            "replacing": principal.user.totp_secret is not None}


@router.get("/account/mfa")
def mfa_page(request: Request, principal: Principal = Depends(web_principal)) -> HTMLResponse:
    """Enrol a TOTP authenticator: a fresh secret kept with the session, confirmed by a code from it."""
    secret = begin_totp_enrolment(principal.web_session)
    return render(request, "mfa.html", _mfa_context(principal, secret, None))


@router.post("/account/mfa")
def mfa_enroll(
    request: Request,
    code: str = Form(...),
    password: str = Form(""),
    current_code: str = Form(""),
    principal: Principal = Depends(web_principal),
    session: Session = DB_SESSION,
    rt: Runtime = Depends(runtime),
) -> Response:
    ws = principal.web_session
    try:
        with session.begin_nested():
            enroll_totp(session, rt.audit, ws, code, password or None, current_code or None)
    except ValueError as exc:
        secret = ws.pending_totp_secret or begin_totp_enrolment(ws)
        return render(request, "mfa.html", _mfa_context(principal, secret, str(exc)), status_code=422)
    return RedirectResponse("/", status_code=303)


@router.get("/")
def dashboard(request: Request, session: Session = DB_SESSION,
              principal: Principal = Depends(require("register.read", web=True))) -> HTMLResponse:
    scope = principal.departments(session)
    by = {attr: {k[0]: v for k, v in count_by(session, attr, departments=scope).items()}
          for attr in ("hosting", "network_stack", "mlps_level", "data_class")}
    total = sum(by["hosting"].values())

    def rate(n: int) -> str:
        return f"{100 * n / total:.1f}%" if total else "—"

    kpis = {
        "total": total,
        "cloud_rate": rate(by["hosting"].get("gov_cloud", 0)),
        "dual_rate": rate(by["network_stack"].get("dual", 0) + by["network_stack"].get("ipv6", 0)),
        "level3_plus": by["mlps_level"].get(3, 0) + by["mlps_level"].get(4, 0),
    }
    return render(request, "dashboard.html", {"me": principal, "by": by, "kpis": kpis, "nav": "dashboard"})


@router.get("/departments")
def departments_page(request: Request, session: Session = DB_SESSION,
                     principal: Principal = Depends(require("register.read", web=True))) -> HTMLResponse:
    rows = list_departments(session, principal.departments(session))
    return render(request, "departments.html", {"me": principal, "rows": rows, "nav": "departments"})


@router.get("/systems")
def systems_page(request: Request, session: Session = DB_SESSION,
                 principal: Principal = Depends(require("register.read", web=True))) -> HTMLResponse:
    params = {k: v for k, v in request.query_params.items() if v and k in (*FILTER_FIELDS, "q")}
    try:
        level = int(params["mlps_level"]) if "mlps_level" in params else None
        page = min(100_000, max(1, int(request.query_params.get("page", "1"))))
    except ValueError:
        raise HTTPException(422, "mlps_level and page must be numbers / 级别和页码须为数字") from None
    scope = principal.departments(session)
    f = SystemFilter(params.get("department"), level, params.get("data_class"), params.get("hosting"),
                     params.get("network_stack"), params.get("network_zone"), params.get("status"),
                     params.get("q"), scope)
    try:
        normalise_filter(f)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    rows, total = list_systems(session, f, PAGE_SIZE, (page - 1) * PAGE_SIZE)
    depts = [d for d, _ in list_departments(session, scope)]
    names = {d.code: d.name for d in depts}
    pages = max(1, -(-total // PAGE_SIZE))
    return render(request, "systems.html", {
        "me": principal, "rows": rows, "total": total, "params": params, "departments": depts,
        "dept_names": names, "page": page, "pages": pages, "nav": "systems",
        "page_link": lambda p: "/systems?" + urlencode({**params, "page": p}),
    })


@router.get("/systems/{system_id}")
def system_page(system_id: str, request: Request, session: Session = DB_SESSION,
                principal: Principal = Depends(require("register.read", web=True))) -> HTMLResponse:
    system = session.get(System, system_id)
    scope = principal.departments(session)
    if system is None or (scope is not None and system.department_code not in scope):
        raise HTTPException(404, f"system '{system_id}' not found / 未找到该系统")
    dept = session.get(Department, system.department_code)
    grades = {
        "info": vocabulary().grade(system.grading_info_object, system.grading_info_degree),
        "service": vocabulary().grade(system.grading_service_object, system.grading_service_degree),
    }
    return render(request, "system_detail.html", {"me": principal, "s": system, "dept": dept, "grades": grades,
                                                  "nav": "systems"})


EVENT_FILTERS = ("event.dataset", "event.outcome", "host.name", "source.ip", "user.name", "gov.department")
EVENT_TERMS = ("event.dataset", "host.name", "source.ip", "user.name", "gov.department")


@router.get("/soc/events")
def events_page(request: Request, session: Session = DB_SESSION,
                principal: Principal = Depends(require("soc.read", web=True))) -> HTMLResponse:
    """Event search for analysts and departments (a department user sees only its own events), with the
    matching events over time and their most frequent values."""
    params = {k: v for k, v in request.query_params.items() if v}
    where = [f"{f}={params[f]}" for f in EVENT_FILTERS if f in params]
    interval = params.get("interval", "1h")
    error, hits, total, stats = None, [], 0, {"terms": {}, "histogram": {"buckets": []}}
    try:
        if interval not in HISTOGRAM_INTERVALS:
            raise ValueError(f"interval must be one of {', '.join(HISTOGRAM_INTERVALS)}")
        query = build_query(principal, session, params.get("q"), params.get("from"), params.get("to"), where, 100)
        store = services(request).soc.store
        result = store.search(query)
        hits, total = result.hits, result.total
        stats = aggregate(store, query, list(EVENT_TERMS), interval, 5)
    except (HTTPException, ValueError) as exc:
        error = getattr(exc, "detail", None) or str(exc)
    peak = max((b["count"] for b in stats["histogram"]["buckets"]), default=0)
    return render(request, "soc_events.html", {
        "me": principal, "hits": hits, "total": total, "params": params, "filter_fields": EVENT_FILTERS,
        "error": error, "nav": "events", "stats": stats, "peak": peak, "interval": interval,
        "intervals": list(HISTOGRAM_INTERVALS)})


def filter_link(params: dict[str, str], field_name: str, value: str) -> str:
    """The events page URL with the current filters plus ``field_name=value``."""
    return "/soc/events?" + urlencode({**params, field_name: value})


@router.get("/soc/health")
def soc_health_page(request: Request, session: Session = DB_SESSION,
                    principal: Principal = Depends(require("soc.read", web=True))) -> HTMLResponse:
    soc = services(request)
    return render(request, "soc_health.html", {"me": principal, "h": health(request, session, principal),
                                               "dead": soc.soc.deadletters.latest(10), "nav": "soc_health"})
