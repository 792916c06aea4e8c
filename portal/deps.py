"""Request dependencies: database session, the authenticated principal, permission checks, CSRF."""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from dataclasses import dataclass

from fastapi import Depends, HTTPException, Request
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from core.runtime import Runtime
from inventory.models import Department
from portal.models import User, WebSession
from portal.rbac import policy
from portal.security import mfa_missing, password_expired, resolve_session, resolve_token

SESSION_COOKIE = "ys_session"
UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


class LoginRequired(Exception):
    """Raised by web routes without a valid session; answered with a redirect to /login."""


class PasswordChangeRequired(Exception):
    """Raised by web routes while the user's password is expired or initial."""


class MfaEnrollmentRequired(Exception):
    """Raised by web routes while the user's role requires a second factor that is not enrolled."""


def runtime(request: Request) -> Runtime:
    return request.app.state.runtime


def db(request: Request) -> Iterator[Session]:
    """One transaction per request; committed when the handler returns normally."""
    with runtime(request).transaction() as session:
        yield session


# Commit (or roll back) before the response is sent, so a client never sees a success that was not stored.
DB_SESSION = Depends(db, scope="function")


@dataclass
class Principal:
    user: User
    via: str  # "session" or "token"
    web_session: WebSession | None = None

    @property
    def name(self) -> str:
        return self.user.username

    def can(self, permission: str) -> bool:
        return policy().allows(self.user.role, permission)

    def departments(self, session: Session) -> set[str] | None:
        """Departments this principal may see (its own and sub-units), or None for all."""
        if not policy().department_scoped(self.user.role):
            return None
        own = self.user.department_code
        if own is None:
            return set()
        children: dict[str, list[str]] = {}
        for code, parent in session.execute(select(Department.code, Department.parent_code)):
            if parent:
                children.setdefault(parent, []).append(code)
        seen, stack = {own}, [own]
        while stack:
            for child in children.get(stack.pop(), []):
                if child not in seen:
                    seen.add(child)
                    stack.append(child)
        return seen


async def _csrf_ok(request: Request, ws: WebSession) -> bool:
    supplied = request.headers.get("x-csrf-token")
    if supplied is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        supplied = (await request.form()).get("csrf_token")
    return isinstance(supplied, str) and hmac.compare_digest(supplied, ws.csrf_token)


async def _resolve(request: Request, session: Session) -> Principal | None:
    settings = runtime(request).settings.portal
    auth = request.headers.get("authorization", "")
    # The database calls run in the thread pool: a blocking wait for SQLite's write lock on the event loop would
    # stall the very requests that hold the lock (their commits need the loop) until the busy timeout.
    if auth.lower().startswith("bearer "):
        user = await run_in_threadpool(resolve_token, session, auth[7:].strip())
        return Principal(user, "token") if user else None
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return None
    def load() -> WebSession | None:
        found = resolve_session(session, settings, cookie)
        if found is not None:
            _ = found.user  # load the user here too, not lazily on the event loop
        return found

    ws = await run_in_threadpool(load)
    if ws is None:
        return None
    if request.method in UNSAFE_METHODS and not await _csrf_ok(request, ws):
        raise HTTPException(403, "CSRF token missing or wrong / CSRF 校验失败")
    return Principal(ws.user, "session", ws)


async def api_principal(request: Request, session: Session = DB_SESSION) -> Principal:
    """The caller of an API route (bearer token or session cookie); 401 when there is none."""
    principal = await _resolve(request, session)
    if principal is None:
        raise HTTPException(401, "authentication required / 需要登录", headers={"WWW-Authenticate": "Bearer"})
    portal = runtime(request).settings.portal
    if principal.via == "session" and password_expired(principal.user, portal):
        raise HTTPException(403, "password change required / 需先修改密码")
    if principal.via == "session" and mfa_missing(principal.user, portal):
        raise HTTPException(403, "second factor not enrolled / 需先绑定动态口令")
    return principal


async def web_principal(request: Request, session: Session = DB_SESSION) -> Principal:
    """The logged-in user of a console page; redirects to the login page otherwise."""
    principal = await _resolve(request, session)
    if principal is None or principal.via != "session":
        raise LoginRequired()
    portal = runtime(request).settings.portal
    if password_expired(principal.user, portal) and request.url.path != "/account/password":
        raise PasswordChangeRequired()
    if mfa_missing(principal.user, portal) and not request.url.path.startswith("/account/"):
        raise MfaEnrollmentRequired()
    return principal


def require(permission: str, *, web: bool = False):  # type: ignore[no-untyped-def]
    """Dependency that yields the principal if its role holds ``permission``, else 403."""
    policy().allows("admin", permission)  # fail fast on a misspelt permission
    source = web_principal if web else api_principal

    def check(principal: Principal = Depends(source)) -> Principal:
        if not principal.can(permission):
            raise HTTPException(403, f"role '{principal.user.role}' lacks permission '{permission}' / 无权限")
        return principal

    return check
