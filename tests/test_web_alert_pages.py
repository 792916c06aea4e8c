"""Console SOC pages: /soc/drills is department-scoped, and an alert is handed over (转交) from its detail page with
the same user check as the API; the transition form refuses an assignee who is not a user able to work alerts."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from core.audit import AuditEntry
from soc.alerts.models import Alert, AlertHistory, AlertNote
from tests.conftest import Portal, open_portal
from tests.test_auth import login


@pytest.fixture(scope="module")
def portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Portal]:
    """The shared test portal, with no second factor required so the admin can use the console too."""
    with open_portal(tmp_path_factory, "web-alert-pages", mfa_required_roles=[]) as opened:
        yield opened


def _browser(portal: Portal, username: str) -> TestClient:
    """A logged-in console session on the running app (not entered as a context: the lifespan runs once)."""
    browser = TestClient(portal.client.app)
    assert login(browser, username).status_code == 303
    return browser


def _csrf(browser: TestClient, path: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', browser.get(path).text)
    assert match, f"no CSRF token on {path}"
    return match.group(1)


def _alert(portal: Portal, department: str, status: str = "acknowledged", assignee: str | None = None) -> int:
    now = datetime.now(UTC)
    with portal.rt.transaction() as session:
        alert = Alert(rule_id="web-test", rule_title="控制台转交测试", rule_level="high",
                      group_key=f"g-{now.timestamp()}", severity="high", score=70, status=status, assignee=assignee,
                      department_code=department,
                      system_id=f"SYS-{department}-001", first_seen=now, last_seen=now,
                      acknowledge_due=now + timedelta(hours=1), resolve_due=now + timedelta(days=1),
                      resolved_at=now if status == "resolved" else None)
        session.add(alert)
        session.flush()
        return alert.id


def _state(portal: Portal, alert_id: int) -> tuple[str, str | None]:
    with portal.rt.sessions() as session:
        alert = session.get(Alert, alert_id)
        assert alert is not None
        return alert.status, alert.assignee


def _drill_ids(page: str) -> set[int]:
    return {int(i) for i in re.findall(r'<tr data-id="(\d+)"', page)}


def test_drills_page_shows_a_department_user_only_its_departments_drills(portal: Portal) -> None:
    analyst = portal.as_role("security_analyst")
    start = datetime.now(UTC).replace(microsecond=0)
    body = {"type": "attack_defense", "planned_start": start.isoformat(),
            "steps": [{"name": "暴力破解", "technique": "T1110.001", "target": "198.51.100.10"}]}
    ids = {}
    for name, scope in (("gaj", ["SYS-GAJ-001"]), ("rsj", ["SYS-RSJ-001"])):
        created = portal.client.post("/api/soc/drills", json={**body, "title": f"页面演练-{name}", "scope": scope},
                                     headers=analyst)
        assert created.status_code == 201, created.text
        ids[name] = created.json()["drill"]["id"]

    gaj_page = _browser(portal, "department-user").get("/soc/drills")
    assert gaj_page.status_code == 200
    assert ids["gaj"] in _drill_ids(gaj_page.text) and ids["rsj"] not in _drill_ids(gaj_page.text)
    assert "页面演练-gaj" in gaj_page.text and "页面演练-rsj" not in gaj_page.text
    rsj_page = _browser(portal, "rsj-user").get("/soc/drills").text
    assert ids["rsj"] in _drill_ids(rsj_page) and ids["gaj"] not in _drill_ids(rsj_page)
    for username in ("security-analyst", "admin"):
        assert {ids["gaj"], ids["rsj"]} <= _drill_ids(_browser(portal, username).get("/soc/drills").text)
    # the page and the API agree for the department user
    api = portal.client.get("/api/soc/drills", headers=portal.as_role("department_user")).json()
    assert {d["id"] for d in api} == _drill_ids(gaj_page.text)


def test_hand_over_changes_the_assignee_only_and_is_audited(portal: Portal) -> None:
    alert_id = _alert(portal, "GAJ", assignee="security-analyst")
    browser = _browser(portal, "security-analyst")
    page = browser.get(f"/soc/alerts/{alert_id}")
    assert 'id="assign-form"' in page.text and "转交" in page.text
    assert '<option value="admin">' in page.text and '<option value="department-user">' not in page.text
    assert "Hand over" in browser.get(f"/soc/alerts/{alert_id}?lang=en").text

    done = browser.post(f"/soc/alerts/{alert_id}/assign", follow_redirects=False,
                        data={"assignee": " admin ", "note": "夜班交接", "csrf_token": _csrf(browser, "/soc/alerts")})
    assert done.status_code == 303 and done.headers["location"] == f"/soc/alerts/{alert_id}"
    assert _state(portal, alert_id) == ("acknowledged", "admin")
    with portal.rt.sessions() as session:
        history = session.scalars(select(AlertHistory).where(AlertHistory.alert_id == alert_id)).all()
        assert [(h.actor, h.from_status, h.to_status, h.assignee) for h in history] == [
            ("security-analyst", "acknowledged", "acknowledged", "admin")]
        notes = session.scalars(select(AlertNote).where(AlertNote.alert_id == alert_id)).all()
        assert [(n.author, n.body) for n in notes] == [("security-analyst", "夜班交接")]
        entries = session.scalars(select(AuditEntry).where(AuditEntry.action == "alert.assign",
                                                           AuditEntry.object_id == str(alert_id))).all()
        assert len(entries) == 1 and entries[0].actor == "security-analyst"
        assert json.loads(entries[0].payload) == {"from": "security-analyst", "to": "admin", "status": "acknowledged"}
    shown = browser.get(f"/soc/alerts/{alert_id}").text
    assert re.search(r'id="alert-assignee">admin<', shown)

    again = browser.post(f"/soc/alerts/{alert_id}/assign",
                         data={"assignee": "admin", "csrf_token": _csrf(browser, "/soc/alerts")})
    assert again.status_code == 409 and "already assigned to admin" in again.text


def test_hand_over_refuses_a_user_who_cannot_take_the_alert(portal: Portal) -> None:
    alert_id = _alert(portal, "GAJ", assignee="security-analyst")
    browser = _browser(portal, "security-analyst")
    csrf = _csrf(browser, "/soc/alerts")
    unknown = browser.post(f"/soc/alerts/{alert_id}/assign", data={"assignee": "nobody-here", "csrf_token": csrf})
    assert unknown.status_code == 422
    error = re.search(r'id="alert-error">([^<]*)<', unknown.text)
    assert error and "nobody-here" in html.unescape(error.group(1)) and "不存在" in error.group(1)
    unqualified = browser.post(f"/soc/alerts/{alert_id}/assign",
                               data={"assignee": "department-user", "csrf_token": csrf})
    assert unqualified.status_code == 422 and "soc.alerts.manage" in unqualified.text
    blank = browser.post(f"/soc/alerts/{alert_id}/assign", data={"assignee": "  ", "csrf_token": csrf})
    assert blank.status_code == 422 and "请填写处理人" in blank.text
    assert _state(portal, alert_id) == ("acknowledged", "security-analyst")
    with portal.rt.sessions() as session:
        assert session.scalars(select(AuditEntry).where(AuditEntry.action == "alert.assign",
                                                        AuditEntry.object_id == str(alert_id))).all() == []

    closed = _alert(portal, "GAJ", status="resolved")
    assert 'id="assign-form"' not in browser.get(f"/soc/alerts/{closed}").text
    refused = browser.post(f"/soc/alerts/{closed}/assign", data={"assignee": "admin", "csrf_token": csrf})
    assert refused.status_code == 409 and "only an open alert" in refused.text
    assert _state(portal, closed) == ("resolved", None)


def test_department_user_can_neither_see_nor_use_the_hand_over(portal: Portal) -> None:
    alert_id = _alert(portal, "GAJ")
    browser = _browser(portal, "department-user")
    page = browser.get(f"/soc/alerts/{alert_id}")
    assert page.status_code == 200 and 'id="assign-form"' not in page.text
    csrf = _csrf(browser, f"/soc/alerts/{alert_id}")  # the comment form carries one
    refused = browser.post(f"/soc/alerts/{alert_id}/assign", data={"assignee": "admin", "csrf_token": csrf})
    assert refused.status_code == 403
    assert _state(portal, alert_id) == ("acknowledged", None)
    assert browser.get(f"/soc/alerts/{_alert(portal, 'RSJ')}").status_code == 404


def test_transition_form_refuses_an_unknown_assignee(portal: Portal) -> None:
    alert_id = _alert(portal, "GAJ")
    browser = _browser(portal, "security-analyst")
    csrf = _csrf(browser, "/soc/alerts")
    bad = browser.post(f"/soc/alerts/{alert_id}/transition",
                       data={"status": "investigating", "assignee": "ghost-analyst", "csrf_token": csrf})
    assert bad.status_code == 422 and "ghost-analyst" in bad.text and 'id="alert-error"' in bad.text
    assert _state(portal, alert_id) == ("acknowledged", None)
    good = browser.post(f"/soc/alerts/{alert_id}/transition", follow_redirects=False,
                        data={"status": "investigating", "assignee": "admin", "csrf_token": csrf})
    assert good.status_code == 303
    assert _state(portal, alert_id) == ("investigating", "admin")
    plain = browser.post(f"/soc/alerts/{alert_id}/transition", follow_redirects=False,
                         data={"status": "resolved", "assignee": "", "note": "已封禁来源", "csrf_token": csrf})
    assert plain.status_code == 303 and _state(portal, alert_id) == ("resolved", "admin")
