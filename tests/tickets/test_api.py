"""The ticket API on the test portal: every sample submits, department scoping, review → approval → delivery with
the pipeline after the commit, the violation shown on a refused ticket, errors, and the lead-time histogram."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import Portal

SAMPLES = sorted((Path(__file__).resolve().parents[2] / "inventory" / "samples" / "tickets").glob("*.yaml"))


def load(path: Path) -> dict[str, Any]:
    """A ticket file as the JSON a client would post (YAML dates as ISO text)."""
    return json.loads(json.dumps(yaml.safe_load(path.read_text(encoding="utf-8")), default=str))


def body(name: str) -> dict[str, Any]:
    return load(SAMPLES[0].parent / f"{name}.yaml")


def post(portal: Portal, path: str, role: str, json: dict[str, Any] | None = None) -> Any:
    return portal.client.post(path, headers=portal.as_role(role), json=json if json is not None else {})


def stored_finding(portal: Portal, data: dict[str, Any]) -> dict[str, Any]:
    """A remediation sample pointed at a real evaluation of its system (the sample's unit must be 不符合 in it)."""
    from portal.compliance.store import run_evaluation

    run, report = run_evaluation(portal.rt, data["system"], "auditor", probe_targets=[])
    unit = data["compliance"]["unit"]
    assert next(r for r in report["requirements"] if r["unit"] == unit)["result"] == "不符合"
    return {**data, "compliance": {**data["compliance"], "evaluation_id": run.id}}


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.stem)
def test_every_sample_submits(portal: Portal, path: Path) -> None:
    data = load(path)
    if path.stem == "remediation":
        data = stored_finding(portal, data)
    response = post(portal, "/api/tickets", "department_user", data)
    assert response.status_code == 201, response.text
    out = response.json()
    assert out["state"] == "security_review", out["admission"]
    assert out["type"] == path.stem and out["department"] == "GAJ"
    assert all(c["passed"] for c in out["admission"]["checks"])
    if out["type"] == "remediation":  # no plan; the finding of the evaluation, no 密码应用方案 at level 3
        assert out["plan"] is None and out["compliance"]["evaluation_id"] == data["compliance"]["evaluation_id"]
        assert out["mlps_level"] == 3 and out["crypto_plan"] is None and out["expires_at"] is None
    elif out["type"] != "decommission":
        assert out["plan"]["mode"] == "plan" and out["plan"]["admissible"] is True
    assert out["requester"] == "department-user"


def test_review_approve_deliver_and_scoping(portal: Portal) -> None:
    created = post(portal, "/api/tickets", "department_user", body("change")).json()
    ref = created["id"]
    assert portal.client.get(f"/api/tickets/{ref}", headers=portal.as_role("department_user_rsj")).status_code == 404
    rsj_list = portal.client.get("/api/tickets", headers=portal.as_role("department_user_rsj")).json()
    assert ref not in {t["id"] for t in rsj_list["items"]}
    gaj_list = portal.client.get("/api/tickets?state=open", headers=portal.as_role("department_user")).json()
    assert ref in {t["id"] for t in gaj_list["items"]} and {t["department"] for t in gaj_list["items"]} == {"GAJ"}
    assert post(portal, f"/api/tickets/{ref}/review", "resource_approver").status_code == 403  # role
    assert post(portal, f"/api/tickets/{ref}/approve", "resource_approver").status_code == 409  # stage
    reviewed = post(portal, f"/api/tickets/{ref}/review", "security_reviewer", {"approve": True, "note": "ok"})
    assert reviewed.status_code == 200 and reviewed.json()["security_reviewer"] == "security-reviewer"
    approved = post(portal, f"/api/tickets/{ref}/approve", "resource_approver")
    assert approved.status_code == 200, approved.text
    assert approved.json()["state"] == "provisioning"
    again = post(portal, f"/api/tickets/{ref}/approve", "resource_approver")  # idempotent
    assert again.status_code == 200
    shown = portal.client.get(f"/api/tickets/{ref}", headers=portal.as_role("department_user")).json()
    assert shown["state"] == "delivered"  # the pipeline ran once the approval was stored
    assert [j["kind"] for j in shown["jobs"]] == ["provision", "onboard"]
    assert shown["jobs"][1]["status"] == "not_run"
    assert post(portal, f"/api/tickets/{ref}/renew", "department_user_rsj",
                {"expires": "2028-01-31"}).status_code == 404
    renewed = post(portal, f"/api/tickets/{ref}/renew", "department_user", {"expires": "2028-01-31"})
    assert renewed.status_code == 200 and renewed.json()["state"] == "renewed"
    metrics = portal.client.get("/metrics").text
    match = re.search(r'yunshu_ticket_lead_time_seconds_count\{type="change"\} (\d+)', metrics)
    assert match and int(match.group(1)) >= 1
    assert 'yunshu_ticket_lead_time_seconds_bucket{le="3600.0",type="change"}' in metrics


def test_policy_violation_is_refused_and_shown(portal: Portal) -> None:
    data = body("ipv6")
    data["resources"]["systems"][0]["ingress"].append({"protocol": "tcp", "port_min": 3389, "remote_cidr": "::/0"})
    response = post(portal, "/api/tickets", "department_user", data)
    assert response.status_code == 201
    out = response.json()
    assert out["state"] == "rejected"
    policy = next(c for c in out["admission"]["checks"] if c["check"] == "policy")
    assert not policy["passed"] and any("::/0" in m and "3389" in m for m in policy["messages"])
    assert post(portal, f"/api/tickets/{out['id']}/review", "security_reviewer").status_code == 409


@pytest.mark.parametrize(("change", "status", "text"), [
    ({"department": "RSJ"}, 403, "may not file tickets"),
    ({"crypto_plan": ""}, 422, "密码应用方案"),
    ({"nonsense": 1}, 422, "nonsense"),
    ({"system": "SYS-GAJ-999"}, 422, "not in the register"),
])
def test_bad_input_names_the_problem(portal: Portal, change: dict[str, Any], status: int, text: str) -> None:
    response = post(portal, "/api/tickets", "department_user", {**body("change"), **change})
    assert response.status_code == status and text in response.json()["detail"]


def test_roles_and_reports(portal: Portal) -> None:
    assert post(portal, "/api/tickets", "security_analyst", body("change")).status_code == 403
    assert portal.client.get("/api/tickets", headers=portal.as_role("security_analyst")).status_code == 403
    assert portal.client.get("/api/tickets?state=bogus", headers=portal.as_role("auditor")).status_code == 422
    assert portal.client.get("/api/tickets/TKT-999999", headers=portal.as_role("auditor")).status_code == 404
    assert portal.client.get("/api/tickets/nonsense", headers=portal.as_role("auditor")).status_code == 404
    idle = portal.client.get("/api/tickets/idle-systems?days=30", headers=portal.as_role("department_user")).json()
    assert idle["days"] == 30 and {r["department"] for r in idle["items"]} <= {"GAJ", "GAJJJ", "GAJCRJ"}
    assert post(portal, "/api/tickets/maintenance", "department_user").status_code == 403
    done = post(portal, "/api/tickets/maintenance", "platform_engineer")
    assert done.status_code == 200 and set(done.json()) == {"escalated", "reminded", "reclaiming", "closed"}


def test_withdraw_only_by_the_requester(portal: Portal) -> None:
    ref = post(portal, "/api/tickets", "department_user", body("change")).json()["id"]
    assert post(portal, f"/api/tickets/{ref}/withdraw", "auditor").status_code == 403
    out = post(portal, f"/api/tickets/{ref}/withdraw", "department_user", {"note": "不再需要"})
    assert out.status_code == 200 and out.json()["state"] == "withdrawn"
    assert post(portal, f"/api/tickets/{ref}/withdraw", "department_user").status_code == 409


def test_draft_then_submit(portal: Portal) -> None:
    draft = portal.client.post("/api/tickets?draft=true", headers=portal.as_role("department_user"),
                               json=body("ipv6")).json()
    assert draft["state"] == "draft" and draft["admission"] is None
    ref = draft["id"]
    assert post(portal, f"/api/tickets/{ref}/submit", "department_user_rsj").status_code == 404
    assert post(portal, f"/api/tickets/{ref}/submit", "platform_engineer").status_code == 403  # not the requester
    submitted = post(portal, f"/api/tickets/{ref}/submit", "department_user")
    assert submitted.status_code == 200 and submitted.json()["state"] == "security_review"
    assert post(portal, f"/api/tickets/{ref}/submit", "department_user").status_code == 409
    rejected = post(portal, f"/api/tickets/{ref}/review", "security_reviewer", {"approve": False, "note": "来源过宽"})
    assert rejected.json()["state"] == "rejected" and rejected.json()["history"][-1]["note"] == "来源过宽"
    assert post(portal, f"/api/tickets/{ref}/approve", "resource_approver").status_code == 409


def test_remediation_ticket_through_the_api(portal: Portal) -> None:
    data = stored_finding(portal, body("remediation"))
    created = post(portal, "/api/tickets", "department_user", data)
    assert created.status_code == 201, created.text
    ref, evaluation = created.json()["id"], data["compliance"]["evaluation_id"]
    shown = portal.client.get(f"/api/tickets/{ref}", headers=portal.as_role("department_user")).json()
    assert shown["compliance"]["unit"] == "L3-MMS1-43" and "应急演练" in shown["compliance"]["suggestion_zh"]
    assert post(portal, f"/api/tickets/{ref}/complete", "platform_engineer",
                {"evaluation_id": evaluation + 1}).status_code == 409  # not yet reviewed
    reviewed = post(portal, f"/api/tickets/{ref}/review", "security_reviewer", {"approve": True})
    assert reviewed.status_code == 200 and reviewed.json()["state"] == "onboarding"
    assert reviewed.json()["jobs"] == []  # a drill finding: no onboard.yml
    assert post(portal, f"/api/tickets/{ref}/complete", "department_user",
                {"evaluation_id": evaluation}).status_code == 403
    stale = post(portal, f"/api/tickets/{ref}/complete", "platform_engineer", {"evaluation_id": evaluation})
    assert stale.status_code == 422 and "not later" in stale.json()["detail"]
    assert post(portal, f"/api/tickets/{ref}/approve", "resource_approver").status_code == 409
    listed = portal.client.get("/api/tickets?type=等保整改", headers=portal.as_role("auditor")).json()
    assert ref in {t["id"] for t in listed["items"]} and {t["type"] for t in listed["items"]} == {"remediation"}
