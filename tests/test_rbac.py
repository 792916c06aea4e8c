"""RBAC matrix: every API endpoint × every role, plus department scoping."""

from __future__ import annotations

import itertools
import json
import re
import time
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from inventory.models import Host, System
from portal.models import ROLES
from soc.store.base import SearchQuery
from tests.conftest import Portal
from tests.test_auth import login

ALL = set(ROLES)
# Written out by hand (not read from rbac.yaml) so that a change of policy must be made twice, on purpose.
MATRIX: dict[tuple[str, str], set[str]] = {
    ("GET", "/api/me"): ALL,
    ("GET", "/api/departments"): ALL,
    ("GET", "/api/departments/{code}"): ALL,
    ("GET", "/api/systems"): ALL,
    ("GET", "/api/systems/{system_id}"): ALL,
    ("GET", "/api/hosts"): ALL,
    ("GET", "/api/inventory/export"): {"platform_engineer", "auditor", "admin"},
    ("POST", "/api/inventory/import"): {"platform_engineer", "admin"},
    ("GET", "/api/inventory/ansible"): {"platform_engineer", "admin"},
    ("GET", "/api/audit"): {"auditor", "admin"},
    ("GET", "/api/audit/verify"): {"auditor", "admin"},
    ("GET", "/api/users"): {"auditor", "admin"},
    ("POST", "/api/users"): {"admin"},
    ("GET", "/api/tokens"): ALL,
    ("POST", "/api/tokens"): ALL,
    ("DELETE", "/api/tokens/{token_id}"): ALL,
    ("POST", "/api/soc/ingest"): {"platform_engineer", "security_analyst", "admin"},
    ("GET", "/api/soc/events"): ALL - {"resource_approver"},
    ("GET", "/api/soc/health"): ALL - {"resource_approver"},
    ("GET", "/api/soc/aggregations"): ALL - {"resource_approver"},
    ("GET", "/api/soc/situation"): ALL - {"resource_approver"},
    ("POST", "/api/soc/hunt"): {"security_analyst", "admin"},
    ("GET", "/api/soc/drills"): ALL - {"resource_approver"},
    ("POST", "/api/soc/drills"): {"security_analyst", "admin"},
    ("GET", "/api/soc/drills/scenarios"): ALL - {"resource_approver"},
    ("GET", "/api/soc/drills/{drill_id}"): ALL - {"resource_approver"},
    ("POST", "/api/soc/drills/{drill_id}/replay"): {"security_analyst", "admin"},
    ("POST", "/api/soc/drills/{drill_id}/steps/{seq}/links"): {"security_analyst", "admin"},
    ("POST", "/api/soc/drills/{drill_id}/findings"): {"security_analyst", "admin"},
    ("POST", "/api/soc/drills/{drill_id}/findings/{finding_id}/status"): {"security_analyst", "admin"},
    ("POST", "/api/soc/drills/{drill_id}/steps/{seq}/executed"): {"security_analyst", "admin"},
    ("POST", "/api/soc/drills/{drill_id}/complete"): {"security_analyst", "admin"},
    ("GET", "/api/soc/drills/{drill_id}/report"): ALL - {"resource_approver"},
    ("GET", "/api/soc/alerts"): ALL - {"resource_approver"},
    ("GET", "/api/soc/alerts/{alert_id}"): ALL - {"resource_approver"},
    ("POST", "/api/soc/alerts/{alert_id}/transition"): {"security_analyst", "admin"},
    ("POST", "/api/soc/alerts/{alert_id}/assign"): {"security_analyst", "admin"},
    ("POST", "/api/soc/alerts/{alert_id}/comments"): {"department_user", "security_analyst", "admin"},
    ("GET", "/api/net/kpis"): ALL,
    ("GET", "/api/net/waves"): ALL,
    ("GET", "/api/jobs"): {"platform_engineer", "security_analyst", "auditor", "admin"},
    ("GET", "/api/jobs/{job_id}"): {"platform_engineer", "security_analyst", "auditor", "admin"},
    ("GET", "/api/compliance/systems"): {"auditor", "admin"},
    ("GET", "/api/compliance/systems/{system_id}"): {"auditor", "admin"},
    ("GET", "/api/compliance/systems/{system_id}/trend"): {"auditor", "admin"},
    ("GET", "/api/compliance/systems/{system_id}/answers"): {"auditor", "admin"},
}
# Routes whose allowed calls do real work (a live evaluation, a signed report, a ticket) have their role matrix in
# their own suites (tests/compliance/test_web.py, tests/tickets/test_web.py); here they only must exist.
ELSEWHERE = {
    ("POST", "/api/compliance/systems/{system_id}/evaluate"),
    ("POST", "/api/compliance/systems/{system_id}/answers"),
    ("GET", "/api/compliance/systems/{system_id}/report.zip"),
    ("POST", "/api/compliance/systems/{system_id}/remediation"),
}
CONCRETE = {"{code}": "GAJ", "{system_id}": "SYS-GAJ-001", "{token_id}": "999999", "{alert_id}": "999999",
            "{drill_id}": "999999", "{seq}": "1", "{job_id}": "999999", "{finding_id}": "999999"}
_n = itertools.count()


def _request(portal: Portal, method: str, path: str, headers: dict[str, str]):  # type: ignore[no-untyped-def]
    for key, value in CONCRETE.items():
        path = path.replace(key, value)
    if (method, path) == ("POST", "/api/inventory/import"):
        return portal.client.post(path, headers=headers, files={"file": ("empty.yaml", b"departments: []\n")})
    if (method, path) == ("POST", "/api/users"):
        body = {"username": f"new{next(_n)}", "role": "auditor", "password": "Another-Str0ng-Pass"}
        return portal.client.post(path, headers=headers, json=body)
    if (method, path) == ("POST", "/api/soc/ingest"):
        return portal.client.post(path, headers=headers, content=b"")
    if path.endswith("/transition"):
        return portal.client.post(path, headers=headers, json={"status": "acknowledged"})
    if path.endswith("/comments"):
        return portal.client.post(path, headers=headers, json={"body": "note"})
    if (method, path) == ("POST", "/api/tokens"):
        return portal.client.post(path, headers=headers, json={"name": "matrix"})
    return portal.client.request(method, path, headers=headers)


def test_matrix_covers_every_api_route(portal: Portal) -> None:
    paths = portal.client.app.openapi()["paths"]
    routes = {(m.upper(), p) for p, ops in paths.items() if p.startswith("/api") for m in ops}
    from tests.tickets.test_web import TICKET_MATRIX

    assert routes == set(MATRIX) | ELSEWHERE | set(TICKET_MATRIX)


@pytest.mark.parametrize(("method", "path"), sorted(MATRIX))
@pytest.mark.parametrize("role", ROLES)
def test_role_matrix(portal: Portal, role: str, method: str, path: str) -> None:
    response = _request(portal, method, path, portal.as_role(role))
    if role in MATRIX[(method, path)]:
        assert response.status_code not in (401, 403), response.text
        assert response.status_code < 500
    else:
        assert response.status_code == 403, response.text


@pytest.mark.parametrize(("method", "path"), sorted(MATRIX))
def test_anonymous_is_refused(portal: Portal, method: str, path: str) -> None:
    assert _request(portal, method, path, {}).status_code == 401


def test_bad_token_is_refused(portal: Portal) -> None:
    r = portal.client.get("/api/systems", headers={"Authorization": "Bearer ysk_not-a-real-token"})
    assert r.status_code == 401


def test_department_user_sees_only_its_department(portal: Portal) -> None:
    gaj = portal.as_role("department_user")
    body = portal.client.get("/api/systems?limit=1000", headers=gaj).json()
    departments = {s["department"] for s in body["items"]}
    assert departments and departments <= {"GAJ", "GAJJJ", "GAJCRJ"}
    everyone = portal.client.get("/api/systems?limit=1000", headers=portal.as_role("auditor")).json()
    assert body["total"] < everyone["total"]
    visible_depts = {d["code"] for d in portal.client.get("/api/departments", headers=gaj).json()}
    assert "GAJ" in visible_depts and "RSJ" not in visible_depts


@pytest.mark.parametrize("path", ["/api/systems/SYS-RSJ-001", "/api/departments/RSJ"])
def test_cross_department_access_denied(portal: Portal, path: str) -> None:
    assert portal.client.get(path, headers=portal.as_role("department_user")).status_code == 404
    assert portal.client.get(path, headers=portal.as_role("department_user_rsj")).status_code == 200


def test_cross_department_filters_return_nothing(portal: Portal) -> None:
    gaj = portal.as_role("department_user")
    assert portal.client.get("/api/systems?department=RSJ", headers=gaj).json()["total"] == 0
    assert portal.client.get("/api/hosts?system=SYS-RSJ-001", headers=gaj).json() == []
    rsj_hosts = portal.client.get("/api/hosts?system=SYS-RSJ-001", headers=portal.as_role("department_user_rsj"))
    assert rsj_hosts.json()


def test_token_revocation_by_other_user_denied(portal: Portal) -> None:
    created = portal.client.post("/api/tokens", headers=portal.as_role("auditor"), json={"name": "mine"}).json()
    other = portal.client.delete(f"/api/tokens/{created['id']}", headers=portal.as_role("department_user"))
    assert other.status_code == 404
    own = portal.client.delete(f"/api/tokens/{created['id']}", headers=portal.as_role("auditor"))
    assert own.status_code == 200
    revoked = portal.client.get("/api/me", headers={"Authorization": f"Bearer {created['token']}"})
    assert revoked.status_code == 401


def _browser(portal: Portal, username: str) -> TestClient:
    """A logged-in console session on the running app. Not entered as a context: that would run the app's lifespan
    a second time and leave ``app.state.soc`` pointing at SOC services stopped on exit."""
    browser = TestClient(portal.client.app)
    assert login(browser, username).status_code == 303
    return browser


def test_console_pages_are_scoped_for_department_user(portal: Portal) -> None:
    browser = _browser(portal, "department-user")
    page = browser.get("/systems")
    rows = re.findall(r'data-department="([A-Z]+)"', page.text)
    assert rows and set(rows) <= {"GAJ", "GAJJJ", "GAJCRJ"}
    assert browser.get("/systems/SYS-RSJ-001").status_code == 404
    assert browser.get("/systems/SYS-GAJ-001").status_code == 200
    assert "市人社局" not in browser.get("/departments").text


def test_events_page_is_scoped_for_department_user(portal: Portal) -> None:
    """/soc/events renders the search server-side: a department user sees its own departments' events only, and a
    department filter naming another department finds nothing instead of widening the scope."""
    with portal.rt.sessions() as s:
        hosts = {dept: s.scalars(select(Host.name).join(System).where(System.department_code == dept)
                                 .order_by(Host.name)).first() for dept in ("GAJ", "RSJ")}
    now = datetime.now(UTC).isoformat()
    docs = [{"@timestamp": now, "message": f"scopecheck {dept} {i}", "host": {"name": hosts[dept]}}
            for dept in ("GAJ", "RSJ") for i in range(2)]
    body = "\n".join(json.dumps(d) for d in docs).encode()
    analyst = portal.as_role("security_analyst")
    assert portal.client.post("/api/soc/ingest", content=body, headers=analyst).json() == {"accepted": 4}
    store = portal.client.app.state.soc.soc.store
    deadline = time.monotonic() + 30
    while store.count(SearchQuery(text="scopecheck")) < 4:
        assert time.monotonic() < deadline, "the events were not stored"
        time.sleep(0.05)

    def departments(page: str) -> list[str]:
        return re.findall(r'<tr data-department="([A-Z]*)">', page)

    everyone = _browser(portal, "security-analyst").get("/soc/events?q=scopecheck").text
    assert sorted(departments(everyone)) == ["GAJ", "GAJ", "RSJ", "RSJ"]
    browser = _browser(portal, "department-user")
    mine = browser.get("/soc/events?q=scopecheck")
    assert mine.status_code == 200
    assert departments(mine.text) == ["GAJ", "GAJ"] and "RSJ" not in mine.text  # rows, top values, histogram
    assert "共 2 个" in mine.text
    widened = browser.get("/soc/events", params={"q": "scopecheck", "gov.department": "RSJ"})
    assert widened.status_code == 200
    assert departments(widened.text) == [] and "没有符合条件的事件" in widened.text and "共 0 个" in widened.text
    # the API behind the same search holds the same line
    gaj = portal.as_role("department_user")
    api = portal.client.get("/api/soc/events", params={"q": "scopecheck", "where": "gov.department=RSJ"},
                            headers=gaj).json()
    assert api["total"] == 0
    rsj = portal.client.get("/api/soc/events", params={"q": "scopecheck"},
                            headers=portal.as_role("department_user_rsj")).json()
    assert rsj["total"] == 2 and {e["gov"]["department"] for e in rsj["items"]} == {"RSJ"}
