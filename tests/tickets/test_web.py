"""Ticket console pages (cookie sessions, CSRF on every form post, department scoping) and the role matrix of the
ticket API (kept here; tests/test_rbac.py covers the other routes)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from portal.models import ROLES
from tests.conftest import PASSWORD, Portal

CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]+)"')
SAMPLE = Path(__file__).resolve().parents[2] / "inventory" / "samples" / "tickets" / "change.yaml"
ALL = set(ROLES)
READERS = ALL - {"security_analyst"}
# Written out by hand, like tests/test_rbac.py: a change of policy must be made twice, on purpose.
TICKET_MATRIX: dict[tuple[str, str], set[str]] = {
    ("GET", "/api/tickets"): READERS,
    ("POST", "/api/tickets"): {"department_user", "platform_engineer", "admin"},
    ("GET", "/api/tickets/idle-systems"): READERS,
    ("POST", "/api/tickets/maintenance"): {"platform_engineer", "admin"},
    ("GET", "/api/tickets/{ref}"): READERS,
    ("POST", "/api/tickets/{ref}/submit"): {"department_user", "platform_engineer", "admin"},
    ("POST", "/api/tickets/{ref}/review"): {"security_reviewer", "admin"},
    ("POST", "/api/tickets/{ref}/approve"): {"resource_approver", "admin"},
    ("POST", "/api/tickets/{ref}/withdraw"): READERS,
    ("POST", "/api/tickets/{ref}/renew"): {"department_user", "platform_engineer", "admin"},
    ("POST", "/api/tickets/{ref}/retry-onboarding"): {"platform_engineer", "admin"},
    ("POST", "/api/tickets/{ref}/complete"): {"platform_engineer", "admin"},
}


def sample() -> dict[str, Any]:
    return json.loads(json.dumps(yaml.safe_load(SAMPLE.read_text(encoding="utf-8")), default=str))


def logged_in(portal: Portal, username: str) -> TestClient:
    """A client with its own cookie jar, logged in through the login form."""
    client = TestClient(portal.client.app)
    csrf = CSRF_INPUT.search(client.get("/login").text).group(1)  # type: ignore[union-attr]
    r = client.post("/login", data={"username": username, "password": PASSWORD, "csrf_token": csrf},
                    follow_redirects=False)
    assert r.status_code == 303, r.text
    return client


def csrf_of(client: TestClient, path: str) -> str:
    return CSRF_INPUT.search(client.get(path).text).group(1)  # type: ignore[union-attr]


def test_ticket_route_matrix_is_complete(portal: Portal) -> None:
    paths = portal.client.app.openapi()["paths"]
    routes = {(m.upper(), p) for p, ops in paths.items() if p.startswith("/api/tickets") for m in ops}
    assert routes == set(TICKET_MATRIX)


@pytest.mark.parametrize(("method", "path"), sorted(TICKET_MATRIX))
@pytest.mark.parametrize("role", ROLES)
def test_ticket_role_matrix(portal: Portal, role: str, method: str, path: str) -> None:
    url = path.replace("{ref}", "TKT-999999")
    response = portal.client.request(method, url, headers=portal.as_role(role), json={} if method == "POST" else None)
    if role in TICKET_MATRIX[(method, path)]:
        assert response.status_code not in (401, 403), response.text
        assert response.status_code < 500
    else:
        assert response.status_code == 403, response.text
    assert portal.client.request(method, url).status_code == 401


def test_pages_forms_and_csrf(portal: Portal) -> None:
    ref = portal.client.post("/api/tickets", headers=portal.as_role("department_user"), json=sample()).json()["id"]
    user = logged_in(portal, "department-user")
    listing = user.get("/tickets")
    assert listing.status_code == 200 and ref in listing.text and "待安全审核" in listing.text
    assert user.get("/tickets?lang=en").text.count("Security review") >= 1
    detail = user.get(f"/tickets/{ref}")
    assert detail.status_code == 200 and "计划模式，未实际执行" in detail.text and 'id="review-form"' not in detail.text
    assert user.get("/tickets/new").status_code == 200
    bad = user.post("/tickets/new", data={"csrf_token": csrf_of(user, "/tickets/new"), "type": "change",
                                          "title": "x", "department": "GAJ", "system": "SYS-GAJ-008",
                                          "justification": "y", "data_catalog_id": "DC-1", "expires": "2027-01-01",
                                          "resources": "systems: ["})
    assert bad.status_code == 422 and "not valid YAML" in bad.text and 'value="SYS-GAJ-008"' in bad.text

    other = logged_in(portal, "rsj-user")
    assert other.get(f"/tickets/{ref}").status_code == 404
    assert ref not in other.get("/tickets").text

    reviewer = logged_in(portal, "security-reviewer")
    assert reviewer.get("/tickets/new").status_code == 403
    page = reviewer.get(f"/tickets/{ref}")
    assert 'id="review-form"' in page.text
    assert reviewer.post(f"/tickets/{ref}/review", data={"decision": "approve"}).status_code == 403  # no CSRF
    assert reviewer.post(f"/tickets/{ref}/review", data={"decision": "approve", "csrf_token": "forged"}
                         ).status_code == 403
    reject = reviewer.post(f"/tickets/{ref}/review", data={"decision": "reject", "csrf_token": csrf_of(
        reviewer, f"/tickets/{ref}")})
    assert reject.status_code == 422 and "reason" in reject.text  # a rejection needs a note
    ok = reviewer.post(f"/tickets/{ref}/review", data={"decision": "approve", "csrf_token": csrf_of(
        reviewer, f"/tickets/{ref}")}, follow_redirects=False)
    assert ok.status_code == 303 and ok.headers["location"] == f"/tickets/{ref}"
    shown = portal.client.get(f"/api/tickets/{ref}", headers=portal.as_role("auditor")).json()
    assert shown["state"] == "resource_approval" and shown["security_reviewer"] == "security-reviewer"
    approver = logged_in(portal, "resource-approver")
    done = approver.post(f"/tickets/{ref}/approve", data={"decision": "approve", "csrf_token": csrf_of(
        approver, f"/tickets/{ref}")}, follow_redirects=False)
    assert done.status_code == 303
    final = portal.client.get(f"/api/tickets/{ref}", headers=portal.as_role("auditor")).json()
    assert final["state"] == "delivered" and final["resource_approver"] == "resource-approver"


def test_remediation_ticket_pages(portal: Portal) -> None:
    from portal.compliance.store import record_answer, run_evaluation

    data = yaml.safe_load((SAMPLE.parent / "remediation.yaml").read_text(encoding="utf-8"))
    unit = "L3-CES1-01"  # answered 不符合, then 符合: the re-test confirms the remediation
    with portal.rt.transaction() as session:
        record_answer(session, portal.rt, data["system"], unit=unit, result="不符合", auditor="auditor", note="弱口令")
    first = run_evaluation(portal.rt, data["system"], "auditor", probe_targets=[])[0].id
    data["compliance"] = {**data["compliance"], "evaluation_id": first, "unit": unit, "finding": "8.1.4.1 a 弱口令"}
    created = portal.client.post("/api/tickets", headers=portal.as_role("department_user"), json=data)
    assert created.status_code == 201, created.text
    ref = created.json()["id"]
    user = logged_in(portal, "department-user")
    page = user.get(f"/tickets/{ref}")
    assert 'id="ticket-finding"' in page.text and "8.1.4.1 a 弱口令" in page.text and unit in page.text
    assert "等保整改" in page.text and 'id="complete-form"' not in page.text
    reviewer = logged_in(portal, "security-reviewer")
    ok = reviewer.post(f"/tickets/{ref}/review", data={"decision": "approve", "csrf_token": csrf_of(
        reviewer, f"/tickets/{ref}")}, follow_redirects=False)
    assert ok.status_code == 303
    shown = portal.client.get(f"/api/tickets/{ref}", headers=portal.as_role("auditor")).json()
    assert shown["state"] == "onboarding" and shown["jobs"][0]["kind"] == "onboard"
    assert shown["jobs"][0]["status"] == "not_run"  # no lab here: onboard.yml did not run, and it says so
    assert shown["history"][-1]["action"] == "remediation_onboard"
    engineer = logged_in(portal, "platform-engineer")
    page = engineer.get(f"/tickets/{ref}")
    assert 'id="complete-form"' in page.text
    stale = engineer.post(f"/tickets/{ref}/complete", data={"evaluation_id": str(first), "csrf_token": csrf_of(
        engineer, f"/tickets/{ref}")})
    assert stale.status_code == 422 and "not later" in stale.text
    with portal.rt.transaction() as session:
        record_answer(session, portal.rt, data["system"], unit=unit, result="符合", auditor="auditor", note="已整改")
    second = run_evaluation(portal.rt, data["system"], "auditor", probe_targets=[])[0].id
    assert engineer.post(f"/tickets/{ref}/complete", data={"evaluation_id": str(second)}).status_code == 403  # CSRF
    done = engineer.post(f"/tickets/{ref}/complete", data={"evaluation_id": str(second), "csrf_token": csrf_of(
        engineer, f"/tickets/{ref}")}, follow_redirects=False)
    assert done.status_code == 303
    final = user.get(f"/tickets/{ref}")
    assert 'data-state="delivered"' in final.text and f"#{second}（符合）" in final.text


def test_idle_systems_page_scoped_with_a_reclaim_link(portal: Portal) -> None:
    user = logged_in(portal, "department-user")  # a GAJ user
    page = user.get("/tickets/idle?days=30")
    assert page.status_code == 200 and "僵尸系统" in page.text and 'value="30"' in page.text
    shown = set(re.findall(r'data-department="([A-Z0-9]+)"', page.text))
    assert shown and shown <= {"GAJ", "GAJJJ", "GAJCRJ"}
    api = portal.client.get("/api/tickets/idle-systems?days=30", headers=portal.as_role("department_user")).json()
    assert {m for m in re.findall(r'<tr data-system="([^"]+)"', page.text)} == {r["system"] for r in api["items"]}
    system = api["items"][0]
    link = f'/tickets/new?type=decommission&amp;department={system["department"]}&amp;system={system["system"]}'
    assert link in page.text
    form = user.get(link.replace("&amp;", "&"))
    assert form.status_code == 200 and f'value="{system["system"]}"' in form.text
    approver = logged_in(portal, "resource-approver")  # not tied to a department: sees every one
    everyone = approver.get("/tickets/idle?days=30")
    assert len(set(re.findall(r'data-department="([A-Z0-9]+)"', everyone.text))) > len(shown)
    assert "reclaim" not in everyone.text  # approvers do not file tickets
    bad = approver.get("/tickets/idle?days=0")
    assert bad.status_code == 200 and "1–3650" in bad.text  # the default threshold is used instead
    assert "idle-link" in user.get("/tickets").text
