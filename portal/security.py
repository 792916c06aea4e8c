"""Identification and authentication (等保 8.1.4.1): password policy, lockout, sessions and API tokens."""

from __future__ import annotations

import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pyotp
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from core.audit import AuditChain
from core.crypto import hash_password, new_token, token_digest, verify_password
from core.settings import PortalSettings
from inventory.models import Department
from portal.models import ROLES, ApiToken, User, WebSession

USERNAME_RE = re.compile(r"^[a-z][a-z0-9_.-]{2,63}$")
TOKEN_PREFIX = "ysk"
# A fixed scrypt hash to spend the same time when the user does not exist (no user enumeration by timing).
_DUMMY_HASH = hash_password(secrets.token_urlsafe(16))


class AuthError(Exception):
    """Login refused; ``code`` is stable for the UI, the message is for logs."""

    def __init__(self, code: str, message: str):
        self.code = code
        super().__init__(message)


def now_utc() -> datetime:
    return datetime.now(UTC)


def _aware(ts: datetime | None) -> datetime | None:
    if ts is None:
        return None
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def password_problems(password: str, policy: PortalSettings, username: str | None = None) -> list[str]:
    """Why a password is not acceptable (empty list when it is): length, character classes, username."""
    problems = []
    if len(password) < policy.password_min_length:
        problems.append(f"密码至少 {policy.password_min_length} 位 / at least {policy.password_min_length} characters")
    classes = sum(bool(re.search(p, password)) for p in (r"[a-z]", r"[A-Z]", r"[0-9]", r"[^A-Za-z0-9]"))
    if classes < policy.password_min_classes:
        problems.append(
            f"需包含大写、小写、数字、符号中的至少 {policy.password_min_classes} 类 / "
            f"use at least {policy.password_min_classes} of upper case, lower case, digits and symbols"
        )
    if username and username.lower() in password.lower():
        problems.append("密码不得包含用户名 / must not contain the user name")
    return problems


def create_user(
    session: Session,
    audit: AuditChain,
    policy: PortalSettings,
    *,
    actor: str,
    username: str,
    role: str,
    password: str,
    display_name: str | None = None,
    department: str | None = None,
    must_change_password: bool = False,
) -> User:
    """Add a user after checking name, role, department and password policy; raise ValueError otherwise."""
    if not USERNAME_RE.match(username):
        raise ValueError(f"invalid username '{username}': 3–64 characters, lower-case letters, digits, _ . -")
    if role not in ROLES:
        raise ValueError(f"unknown role '{role}' (expected one of: {', '.join(ROLES)})")
    if role == "department_user" and not department:
        raise ValueError("a department_user needs --department")
    if department and session.get(Department, department) is None:
        raise ValueError(f"unknown department '{department}'")
    if session.scalar(select(User).where(User.username == username)):
        raise ValueError(f"user '{username}' already exists")
    problems = password_problems(password, policy, username)
    if problems:
        raise ValueError("password rejected: " + "; ".join(problems))
    user = User(
        username=username,
        display_name=display_name or username,
        role=role,
        department_code=department,
        password_hash=hash_password(password),
        password_changed_at=now_utc(),
        must_change_password=must_change_password,
        failed_logins=0,
        active=True,
    )
    session.add(user)
    session.flush()
    audit.append(session, actor=actor, action="user.create", object_type="user", object_id=username,
                 payload={"role": role, "department": department})
    return user


def authenticate(
    session: Session, audit: AuditChain, policy: PortalSettings, username: str, password: str,
    now: datetime | None = None, otp: str | None = None,
) -> User:
    """Check password (and TOTP code once enrolled), applying the lockout policy; every outcome is audited."""
    now = now or now_utc()
    if len(username) > 64 or "\x00" in username or "\x00" in password:
        user = None
    else:  # the row lock serialises concurrent attempts, so no failure is lost from the count
        user = session.scalar(select(User).where(User.username == username).with_for_update())
    if user is None or not user.active:
        verify_password(password, _DUMMY_HASH)
        audit.append(session, actor=username or "-", action="auth.login_failed", object_type="user",
                     object_id=username or "-", payload={"reason": "unknown_user"})
        raise AuthError("invalid", f"unknown or inactive user '{username}'")
    locked_until = _aware(user.locked_until)
    if locked_until and locked_until > now:
        audit.append(session, actor=username, action="auth.login_refused", object_type="user",
                     object_id=username, payload={"reason": "locked", "until": locked_until.isoformat()})
        raise AuthError("locked", f"user '{username}' is locked until {locked_until.isoformat()}")
    reason = None
    if not verify_password(password, user.password_hash):
        reason = "bad_password"
    elif user.totp_secret:
        step = totp_step(user.totp_secret, otp, user.totp_last_step, now)
        if step is None:
            reason = "bad_otp"
        else:
            user.totp_last_step = step
    if reason:
        user.failed_logins += 1
        payload: dict[str, object] = {"reason": reason, "failures": user.failed_logins}
        if user.failed_logins >= policy.lockout_threshold:
            user.locked_until = now + timedelta(minutes=policy.lockout_minutes)
            user.failed_logins = 0
            payload["locked_until"] = user.locked_until.isoformat()
        audit.append(session, actor=username, action="auth.login_failed", object_type="user",
                     object_id=username, payload=payload)
        raise AuthError("invalid", f"{reason} for '{username}'")
    user.failed_logins = 0
    user.locked_until = None
    user.last_login_at = now
    audit.append(session, actor=username, action="auth.login", object_type="user", object_id=username)
    return user


TOTP_STEP = 30


def totp_step(secret: str, code: str | None, after: int | None, now: datetime | None = None) -> int | None:
    """The RFC 6238 time step a 6-digit code belongs to (±1 step of drift), if it is later than ``after``.

    Returning the step lets the caller remember it, so a code cannot be used twice.
    """
    if not code or not code.strip().isdigit():
        return None
    totp = pyotp.TOTP(secret)
    current = int((now or now_utc()).timestamp()) // TOTP_STEP
    for step in (current - 1, current, current + 1):
        if (after is None or step > after) and hmac.compare_digest(totp.at(step * TOTP_STEP), code.strip()):
            return step
    return None


def mfa_missing(user: User, policy: PortalSettings) -> bool:
    """True when the user's role requires a second factor that is not enrolled yet."""
    return user.role in policy.mfa_required_roles and not user.totp_secret


def begin_totp_enrolment(ws: WebSession) -> str:
    """A new secret kept on the server with the session until the user confirms a code for it."""
    ws.pending_totp_secret = pyotp.random_base32()
    return ws.pending_totp_secret


def enroll_totp(session: Session, audit: AuditChain, ws: WebSession, code: str,
                password: str | None = None, current_code: str | None = None) -> None:
    """Bind the session's pending secret once a code from it is given. Replacing an enrolled
    authenticator also needs the password and a code from the current one."""
    user, secret = ws.user, ws.pending_totp_secret
    if not secret:
        raise ValueError("没有待绑定的密钥，请重新打开页面 / no pending key: open the page again")
    replacing = user.totp_secret is not None
    if replacing:
        if not password or not verify_password(password, user.password_hash):
            raise ValueError("更换动态口令需要当前密码 / the current password is needed to replace the authenticator")
        if totp_step(user.totp_secret, current_code, user.totp_last_step) is None:
            raise ValueError("当前动态口令不正确 / the code from the current authenticator is wrong")
    step = totp_step(secret, code, None)
    if step is None:
        raise ValueError("动态口令不正确 / the one-time code does not match")
    user.totp_secret, user.totp_last_step, ws.pending_totp_secret = secret, step, None
    audit.append(session, actor=user.username, action="user.totp_enroll", object_type="user",
                 object_id=user.username, payload={"replaced": replacing})


def password_expired(user: User, policy: PortalSettings, now: datetime | None = None) -> bool:
    """True when the password must be changed: first login or older than the maximum age."""
    now = now or now_utc()
    changed = _aware(user.password_changed_at) or now
    return user.must_change_password or now - changed > timedelta(days=policy.password_max_age_days)


def change_password(
    session: Session, audit: AuditChain, policy: PortalSettings, user: User, current: str, new: str,
    keep_session: WebSession | None = None,
) -> None:
    """Change a user's own password after checking the current one and the policy; every other session of
    the user ends."""
    if not verify_password(current, user.password_hash):
        raise ValueError("当前密码不正确 / the current password is wrong")
    if verify_password(new, user.password_hash):
        raise ValueError("新密码不能与当前密码相同 / the new password must differ from the current one")
    problems = password_problems(new, policy, user.username)
    if problems:
        raise ValueError("; ".join(problems))
    user.password_hash = hash_password(new)
    user.password_changed_at = now_utc()
    user.must_change_password = False
    keep = keep_session.id_digest if keep_session else ""
    session.execute(delete(WebSession).where(WebSession.user_id == user.id, WebSession.id_digest != keep))
    audit.append(session, actor=user.username, action="user.password_change", object_type="user",
                 object_id=user.username)


@dataclass
class NewSession:
    cookie_value: str
    csrf_token: str


def open_session(session: Session, policy: PortalSettings, user: User, client_ip: str | None) -> NewSession:
    """Create a web session (purging idle ones); only the digest of the cookie value is stored."""
    idle_since = now_utc() - timedelta(minutes=policy.session_idle_minutes)
    session.execute(delete(WebSession).where(WebSession.last_seen_at < idle_since))
    raw = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    session.add(WebSession(id_digest=token_digest(raw), user_id=user.id, csrf_token=csrf,
                           created_at=now_utc(), last_seen_at=now_utc(), client_ip=client_ip))
    return NewSession(raw, csrf)


def resolve_session(
    session: Session, policy: PortalSettings, cookie_value: str, now: datetime | None = None
) -> WebSession | None:
    """The live session for a cookie, touching its idle timer; None once idle or too old."""
    now = now or now_utc()
    ws = session.get(WebSession, token_digest(cookie_value))
    if ws is None:
        return None
    idle = now - (_aware(ws.last_seen_at) or now)
    age = now - (_aware(ws.created_at) or now)
    if (idle > timedelta(minutes=policy.session_idle_minutes)
            or age > timedelta(hours=policy.session_absolute_hours) or not ws.user.active):
        return None
    ws.last_seen_at = now
    return ws


def close_session(session: Session, cookie_value: str) -> None:
    session.execute(delete(WebSession).where(WebSession.id_digest == token_digest(cookie_value)))


def create_token(
    session: Session, audit: AuditChain, *, actor: str, user: User, name: str, expires_days: int = 365
) -> tuple[ApiToken, str]:
    """Create an API token for ``user`` (it always expires); the raw token is returned once, its digest kept."""
    if not 1 <= expires_days <= 3650:
        raise ValueError("a token expires after 1 to 3650 days")
    raw = new_token(TOKEN_PREFIX)
    token = ApiToken(
        name=name, user_id=user.id, token_digest=token_digest(raw), token_prefix=raw[:10],
        created_at=now_utc(),
        expires_at=now_utc() + timedelta(days=expires_days), revoked=False,
    )
    session.add(token)
    session.flush()
    audit.append(session, actor=actor, action="token.create", object_type="api_token", object_id=str(token.id),
                 payload={"user": user.username, "name": name, "expires_at": token.expires_at})
    return token, raw


def resolve_token(session: Session, raw: str, now: datetime | None = None) -> User | None:
    """The active user behind a bearer token, or None (unknown, revoked, expired, inactive user)."""
    now = now or now_utc()
    token = session.scalar(select(ApiToken).where(ApiToken.token_digest == token_digest(raw)))
    if token is None or token.revoked or not token.user.active:
        return None
    expires = _aware(token.expires_at)
    if expires and expires <= now:
        return None
    token.last_used_at = now
    return token.user
