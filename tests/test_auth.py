"""Login (等保 8.1.4.1): lockout after 5 failures, idle timeout, CSRF, password policy, hashed secrets."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text, update

from core.audit import AuditEntry
from core.runtime import Runtime
from portal.app import create_app
from portal.models import ApiToken, User, WebSession
from portal.security import create_user, password_problems
from tests.conftest import PASSWORD, load_sample, make_runtime

CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]+)"')


def _portal_with_alice(home: Path, db_url: str | None, **portal: object) -> Iterator[tuple[TestClient, Runtime]]:
    """A portal over the sample city with one auditor, alice."""
    rt = make_runtime(home, db_url, **portal)
    load_sample(rt)
    with rt.transaction() as s:
        create_user(s, rt.audit, rt.settings.portal, actor="test", username="alice", role="auditor",
                    password=PASSWORD)
    with TestClient(create_app(rt)) as client:
        yield client, rt
    rt.close()


@pytest.fixture
def app_rt(tmp_path: Path, db_url: str) -> Iterator[tuple[TestClient, Runtime]]:
    """On SQLite and on PostgreSQL; the second factor is switched off here and tested on its own below."""
    yield from _portal_with_alice(tmp_path / "var", db_url, mfa_required_roles=[])


def login(client: TestClient, username: str = "alice", password: str = PASSWORD):  # type: ignore[no-untyped-def]
    page = client.get("/login")
    csrf = CSRF_INPUT.search(page.text).group(1)
    return client.post("/login", data={"username": username, "password": password, "csrf_token": csrf},
                       follow_redirects=False)


def page_csrf(client: TestClient, path: str = "/") -> str:
    return CSRF_INPUT.search(client.get(path).text).group(1)


def test_login_sets_hardened_session_cookie(app_rt) -> None:  # type: ignore[no-untyped-def]
    client, _ = app_rt
    r = login(client)
    assert r.status_code == 303 and r.headers["location"] == "/"
    cookie = r.headers["set-cookie"]
    assert "ys_session=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
    home = client.get("/")
    assert home.status_code == 200 and "alice" in home.text
    assert home.headers["x-frame-options"] == "DENY"


def test_lockout_after_five_failures(app_rt) -> None:  # type: ignore[no-untyped-def]
    client, rt = app_rt
    for _ in range(5):
        r = login(client, password="wrong-Password-1")
        assert r.status_code == 401 and "用户名或密码错误" in r.text
    locked = login(client)  # the right password is refused while locked
    assert locked.status_code == 401 and "账户已锁定" in locked.text
    with rt.sessions() as s:
        user = s.scalar(select(User).where(User.username == "alice"))
        until = user.locked_until.replace(tzinfo=UTC) if user.locked_until.tzinfo is None else user.locked_until
        assert timedelta(minutes=14) < until - datetime.now(UTC) <= timedelta(minutes=15)
        actions = list(s.scalars(select(AuditEntry.action).where(AuditEntry.object_id == "alice")))
    assert actions.count("auth.login_failed") == 5 and "auth.login_refused" in actions
    with rt.transaction() as s:  # 15 minutes later
        s.execute(update(User).where(User.username == "alice").values(locked_until=datetime.now(UTC)
                                                                       - timedelta(seconds=1)))
    assert login(client).status_code == 303


def test_four_failures_do_not_lock(app_rt) -> None:  # type: ignore[no-untyped-def]
    client, _ = app_rt
    for _ in range(4):
        login(client, password="wrong-Password-1")
    assert login(client).status_code == 303


def test_unknown_user_gets_same_answer(app_rt) -> None:  # type: ignore[no-untyped-def]
    client, _ = app_rt
    r = login(client, username="nobody")
    assert r.status_code == 401 and "用户名或密码错误" in r.text


def test_idle_timeout_ends_session(app_rt) -> None:  # type: ignore[no-untyped-def]
    client, rt = app_rt
    login(client)
    assert client.get("/systems").status_code == 200
    with rt.transaction() as s:  # 16 minutes of silence (the limit is 15)
        s.execute(update(WebSession).values(last_seen_at=datetime.now(UTC) - timedelta(minutes=16)))
    r = client.get("/systems", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    assert client.get("/systems", follow_redirects=False).status_code == 303  # not revived
    login(client)
    with rt.sessions() as s:
        assert len(list(s.scalars(select(WebSession)))) == 1  # the idle session was purged at the next login


def test_activity_keeps_session_alive(app_rt) -> None:  # type: ignore[no-untyped-def]
    client, rt = app_rt
    login(client)
    with rt.transaction() as s:
        s.execute(update(WebSession).values(last_seen_at=datetime.now(UTC) - timedelta(minutes=14)))
    assert client.get("/systems").status_code == 200


def test_login_without_csrf_rejected(app_rt) -> None:  # type: ignore[no-untyped-def]
    client, _ = app_rt
    client.get("/login")
    r = client.post("/login", data={"username": "alice", "password": PASSWORD, "csrf_token": "forged"},
                    follow_redirects=False)
    assert r.status_code == 403


def test_logout_requires_csrf(app_rt) -> None:  # type: ignore[no-untyped-def]
    client, _ = app_rt
    login(client)
    assert client.post("/logout", data={}, follow_redirects=False).status_code == 403
    assert client.post("/logout", data={"csrf_token": "wrong"}, follow_redirects=False).status_code == 403
    assert client.get("/systems").status_code == 200  # still logged in
    ok = client.post("/logout", data={"csrf_token": page_csrf(client)}, follow_redirects=False)
    assert ok.status_code == 303
    assert client.get("/systems", follow_redirects=False).status_code == 303


def test_cookie_api_post_requires_csrf_header(app_rt) -> None:  # type: ignore[no-untyped-def]
    client, _ = app_rt
    login(client)
    assert client.post("/api/tokens", json={"name": "x"}).status_code == 403
    ok = client.post("/api/tokens", json={"name": "x"}, headers={"X-CSRF-Token": page_csrf(client)})
    assert ok.status_code == 201 and ok.json()["token"].startswith("ysk_")


def test_tokens_and_passwords_stored_hashed(app_rt) -> None:  # type: ignore[no-untyped-def]
    client, rt = app_rt
    login(client)
    raw = client.post("/api/tokens", json={"name": "x"}, headers={"X-CSRF-Token": page_csrf(client)}).json()["token"]
    with rt.sessions() as s:
        token = s.scalar(select(ApiToken))
        user = s.scalar(select(User).where(User.username == "alice"))
        dump = " ".join(str(v) for row in s.execute(text("SELECT * FROM api_tokens")) for v in row)
    assert raw not in dump and token.token_digest != raw
    assert user.password_hash.startswith("scrypt$") and PASSWORD not in user.password_hash
    assert client.get("/api/me", headers={"Authorization": f"Bearer {raw}"}).json()["username"] == "alice"


def test_expired_password_forces_change(app_rt) -> None:  # type: ignore[no-untyped-def]
    client, rt = app_rt
    with rt.transaction() as s:
        s.execute(update(User).where(User.username == "alice").values(
            password_changed_at=datetime.now(UTC) - timedelta(days=91)))
    login(client)
    r = client.get("/systems", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/account/password"
    csrf = page_csrf(client, "/account/password")
    weak = client.post("/account/password", data={"current": PASSWORD, "new": "short", "confirm": "short",
                                                  "csrf_token": csrf})
    assert weak.status_code == 422 and "至少 12 位" in weak.text
    new = "Brand-New-Passw0rd"
    ok = client.post("/account/password", data={"current": PASSWORD, "new": new, "confirm": new,
                                                "csrf_token": csrf}, follow_redirects=False)
    assert ok.status_code == 303
    assert client.get("/systems").status_code == 200


@pytest.mark.parametrize(("password", "problem"), [
    ("Sh0rt!", "至少 12 位"),
    ("alllowercaseletters", "至少 3 类"),
    ("Alice-Passw0rd-2026", "用户名"),
])
def test_password_policy(app_rt, password: str, problem: str) -> None:  # type: ignore[no-untyped-def]
    _, rt = app_rt
    problems = password_problems(password, rt.settings.portal, "alice")
    assert any(problem in p for p in problems)
    assert password_problems("Good-Enough-Passw0rd", rt.settings.portal, "alice") == []
    username = "alice.b" if problem == "用户名" else "bob"  # 'alice' exists already
    with rt.transaction() as s, pytest.raises(ValueError, match="password rejected"):
        create_user(s, rt.audit, rt.settings.portal, actor="t", username=username, role="auditor",
                    password=password.replace("Alice", "Alice.b"))


def test_healthz_docs_and_metrics(app_rt) -> None:  # type: ignore[no-untyped-def]
    client, _ = app_rt
    assert client.get("/healthz").json()["status"] == "ok"
    assert "/api/systems" in client.get("/openapi.json").json()["paths"]
    assert client.get("/docs").status_code == 200
    client.get("/login")
    body = client.get("/metrics").text
    assert 'yunshu_http_requests_total{method="GET",route="/login",status="200"}' in body
    assert "yunshu_http_request_duration_seconds_bucket" in body
    gov_cloud = re.search(r'yunshu_systems_by_hosting\{hosting="gov_cloud"\} (\d+)', body)
    assert gov_cloud and int(gov_cloud.group(1).split(".")[0]) > 0
    assert re.search(r'yunshu_systems_by_mlps_level\{mlps_level="3"\} \d+', body)
    assert 'yunshu_systems_by_network_stack{network_stack="dual"}' in body


def test_console_shows_beijing_time(app_rt) -> None:  # type: ignore[no-untyped-def]
    """Stored UTC, shown in Asia/Shanghai (UTC+8)."""
    client, rt = app_rt
    from inventory.models import System

    with rt.transaction() as s:
        s.execute(update(System).where(System.id == "SYS-GAJ-001").values(
            last_activity=datetime(2026, 11, 11, 20, 30, tzinfo=UTC)))
    login(client)
    assert "2026-11-12 04:30" in client.get("/systems/SYS-GAJ-001").text


@pytest.fixture
def mfa_app(tmp_path: Path) -> Iterator[tuple[TestClient, Runtime]]:
    """The default policy: admin and auditor need a second factor."""
    yield from _portal_with_alice(tmp_path / "var", None)


def _login_with_code(client: TestClient, code: str):  # type: ignore[no-untyped-def]
    page = client.get("/login")
    return client.post("/login", data={"username": "alice", "password": PASSWORD, "otp": code,
                                       "csrf_token": CSRF_INPUT.search(page.text).group(1)}, follow_redirects=False)


def test_second_factor_enrolment_and_login(mfa_app) -> None:  # type: ignore[no-untyped-def]
    """等保 8.1.4.1 d: password plus an RFC 6238 one-time code for roles that require it; no code reuse."""
    import time

    import pyotp

    client, rt = mfa_app
    assert login(client).status_code == 303
    r = client.get("/systems", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/account/mfa"
    assert client.get("/api/me").status_code == 403  # session API refused until enrolled
    page = client.get("/account/mfa").text
    secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', page).group(1)
    csrf = CSRF_INPUT.search(page).group(1)
    assert client.post("/account/mfa", data={"code": "000000", "csrf_token": csrf}).status_code == 422
    # a secret sent by the client is ignored: the server keeps the pending one with the session
    forged = pyotp.random_base32()
    sneaky = client.post("/account/mfa", data={"secret": forged, "code": pyotp.TOTP(forged).now(), "csrf_token": csrf})
    assert sneaky.status_code == 422
    totp = pyotp.TOTP(secret)
    enrolled_at = time.time()  # codes derived from one instant: a step boundary mid-test cannot change them
    ok = client.post("/account/mfa", data={"code": totp.at(enrolled_at), "csrf_token": csrf}, follow_redirects=False)
    assert ok.status_code == 303
    assert client.get("/systems").status_code == 200
    client.post("/logout", data={"csrf_token": page_csrf(client)})
    assert login(client).status_code == 401  # password alone is no longer enough
    assert _login_with_code(client, totp.at(enrolled_at)).status_code == 401  # the enrolment code cannot be replayed
    next_code = totp.at(enrolled_at + 30)  # the next time step (one step of drift is allowed)
    assert _login_with_code(client, next_code).status_code == 303
    client.post("/logout", data={"csrf_token": page_csrf(client)})
    assert _login_with_code(client, next_code).status_code == 401  # nor a login code
    with rt.sessions() as s:
        reasons = [json.loads(p)["reason"] for p in s.scalars(select(AuditEntry.payload).where(
            AuditEntry.action == "auth.login_failed"))]
    assert reasons.count("bad_otp") == 3 and "bad_password" not in reasons


def test_replacing_the_authenticator_needs_password_and_current_code(mfa_app) -> None:  # type: ignore[no-untyped-def]
    import time

    import pyotp

    client, rt = mfa_app
    login(client)
    page = client.get("/account/mfa").text
    first = pyotp.TOTP(re.search(r'id="totp-secret">([A-Z2-7]+)<', page).group(1))
    client.post("/account/mfa", data={"code": first.now(), "csrf_token": CSRF_INPUT.search(page).group(1)})
    page = client.get("/account/mfa").text
    assert 'name="current_code"' in page
    second = pyotp.TOTP(re.search(r'id="totp-secret">([A-Z2-7]+)<', page).group(1))
    csrf = CSRF_INPUT.search(page).group(1)
    without = client.post("/account/mfa", data={"code": second.now(), "csrf_token": csrf})
    assert without.status_code == 422
    with rt.sessions() as s:
        assert s.scalar(select(User.totp_secret).where(User.username == "alice")) == first.secret
    later = time.time() + 30
    ok = client.post("/account/mfa", data={"code": second.now(), "password": PASSWORD,
                                           "current_code": first.at(later), "csrf_token": csrf},
                     follow_redirects=False)
    assert ok.status_code == 303
    with rt.sessions() as s:
        assert s.scalar(select(User.totp_secret).where(User.username == "alice")) == second.secret
