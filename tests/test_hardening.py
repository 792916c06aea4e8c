"""Findings of the first review, each kept fixed by a test (concurrency, odd input, time zones, modes)."""

from __future__ import annotations

import stat
import threading
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from core.runtime import Runtime
from inventory.files import FileFormatError
from inventory.models import System
from inventory.register import export_text, import_file
from portal.app import create_app
from portal.models import User
from portal.security import AuthError, authenticate, create_token, create_user
from tests.conftest import PASSWORD, load_sample, make_runtime
from tests.test_auth import login, page_csrf
from tests.test_inventory import GOOD_SYSTEM


def test_parallel_failures_all_count_towards_lockout(rt: Runtime) -> None:
    """Ten wrong passwords at once must lock the account (no lost updates), on SQLite and PostgreSQL."""
    with rt.transaction() as s:
        create_user(s, rt.audit, rt.settings.portal, actor="t", username="carol", role="auditor", password=PASSWORD)
    barrier = threading.Barrier(10)

    def attempt() -> None:
        barrier.wait()
        with rt.transaction() as s:  # as the login route does: the refusal itself is committed
            try:
                authenticate(s, rt.audit, rt.settings.portal, "carol", "wrong-Password-9")
            except AuthError as exc:
                assert exc.code in ("invalid", "locked")

    threads = [threading.Thread(target=attempt) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with rt.sessions() as s:
        assert s.scalar(select(User.locked_until).where(User.username == "carol")) is not None


def test_yaml_aliases_refused(rt: Runtime, tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text('a: &a ["x","x"]\nb: &b [*a,*a]\nc: &c [*b,*b]\nsystems: [*c]\n', encoding="utf-8")
    with rt.transaction() as s, pytest.raises(FileFormatError, match="aliases"):
        import_file(s, bomb, rt.audit, "t")


def test_csv_of_departments_only(rt: Runtime, tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("code,name,name_en,parent\nNEWD,市新部门,New Bureau,\n", encoding="utf-8")
    with rt.transaction() as s:
        assert import_file(s, path, rt.audit, "t").created["department"] == 1


def test_directory_and_mixed_keys_are_clear_errors(rt: Runtime, tmp_path: Path) -> None:
    folder = tmp_path / "d.yaml"
    folder.mkdir()
    mixed = tmp_path / "m.yaml"
    mixed.write_text("1: a\nfoo: b\n", encoding="utf-8")
    with rt.transaction() as s:
        with pytest.raises(FileFormatError, match="is a directory"):
            import_file(s, folder, rt.audit, "t")
        with pytest.raises(FileFormatError, match="unknown top-level keys: 1, foo"):
            import_file(s, mixed, rt.audit, "t")


def test_export_is_utc_whatever_the_session_zone(pg_cluster, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    url = pg_cluster.create_database("tz_shanghai") + "?options=-c%20timezone%3DAsia%2FShanghai"
    rt = make_runtime(tmp_path / "var", url)
    path = tmp_path / "s.yaml"
    path.write_text(GOOD_SYSTEM.replace('"2026-11-01T00:00:00Z"', '"2026-11-01T08:05:00.250Z"'), encoding="utf-8")
    with rt.transaction() as s:
        import_file(s, path, rt.audit, "t")
    with rt.sessions() as s:
        text = export_text(s, "yaml")
    assert "last_activity: '2026-11-01T08:05:00.250000Z'" in text
    path.write_text(text, encoding="utf-8")
    with rt.transaction() as s:  # the round trip changes nothing, sub-seconds included
        assert not import_file(s, path, rt.audit, "t").updated
    rt.close()


@pytest.fixture
def client_rt(tmp_path: Path, db_url: str):  # type: ignore[no-untyped-def]
    rt = make_runtime(tmp_path / "var", db_url, mfa_required_roles=[])
    load_sample(rt)
    with rt.transaction() as s:
        user = create_user(s, rt.audit, rt.settings.portal, actor="t", username="alice", role="auditor",
                           password=PASSWORD)
        token = create_token(s, rt.audit, actor="t", user=user, name="t")[1]
    with TestClient(create_app(rt)) as client:
        yield client, rt, {"Authorization": f"Bearer {token}"}
    rt.close()


def test_odd_input_gets_4xx_not_500(client_rt) -> None:  # type: ignore[no-untyped-def]
    client, _, auth = client_rt
    assert client.get("/api/systems?q=sys-gaj", headers=auth).json()["total"] >= 3  # case-insensitive everywhere
    assert client.get("/api/systems?q=100%25", headers=auth).json()["total"] == 0  # % is literal
    assert client.get("/api/systems?q=a%00b", headers=auth).status_code == 400
    assert client.get("/api/systems/A%00B", headers=auth).status_code == 400
    assert client.get("/api/systems?offset=9223372036854775808", headers=auth).status_code == 422
    assert client.get("/api/systems?hosting=bogus", headers=auth).status_code == 422
    by_label = client.get("/api/systems?hosting=政务云", headers=auth).json()
    assert by_label["total"] > 0 and {x["hosting"] for x in by_label["items"]} == {"gov_cloud"}
    long_name = login(client, username="u" * 300)
    assert long_name.status_code == 401
    assert client.post("/api/users", headers=auth, json={"username": "x", "role": "auditor", "password": "p",
                                                         "display_name": "名" * 5000}).status_code in (403, 422)


def test_unknown_console_url_is_an_html_page(client_rt) -> None:  # type: ignore[no-untyped-def]
    client, _, _ = client_rt
    r = client.get("/no/such/page", headers={"Accept": "text/html"})
    assert r.status_code == 404 and "<html" in r.text


def test_login_redirect_keeps_the_query(client_rt) -> None:  # type: ignore[no-untyped-def]
    client, _, _ = client_rt
    r = client.get("/systems?hosting=gov_cloud&mlps_level=3", follow_redirects=False)
    assert r.headers["location"] == "/login?next=%2Fsystems%3Fhosting%3Dgov_cloud%26mlps_level%3D3"


def test_password_change_ends_other_sessions(client_rt) -> None:  # type: ignore[no-untyped-def]
    client, _, _ = client_rt
    other = TestClient(client.app)
    assert login(other).status_code == 303 and login(client).status_code == 303
    new = "Brand-New-Passw0rd"
    client.post("/account/password", data={"current": PASSWORD, "new": new, "confirm": new,
                                           "csrf_token": page_csrf(client, "/account/password")})
    assert client.get("/systems").status_code == 200
    assert other.get("/systems", follow_redirects=False).status_code == 303


def test_database_and_keys_are_private(client_rt) -> None:  # type: ignore[no-untyped-def]
    _, rt, _ = client_rt
    assert stat.S_IMODE(rt.settings.home.stat().st_mode) == 0o700
    if rt.engine.dialect.name == "sqlite":
        assert stat.S_IMODE(Path(rt.engine.url.database).stat().st_mode) == 0o600


def test_decommissioned_host_not_in_ansible_host(client_rt) -> None:  # type: ignore[no-untyped-def]
    from inventory.ansible_inventory import host_inventory
    from inventory.models import Host

    _, rt, _ = client_rt
    with rt.sessions() as s:
        host = s.scalars(select(Host).join(System).where(System.status == "decommissioned")).first()
        assert host_inventory(s, host.name) == {}
