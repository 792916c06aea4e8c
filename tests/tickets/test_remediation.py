"""等保整改 tickets opened from real 不符合 items of stored evaluations: no resources, plan or expiry; a level-3
system needs no 密码应用方案 reference; security review → remediation work (onboard.yml again for a host baseline
item) → delivered only with a later evaluation showing 符合; separation of duties; every step audited."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from core.audit import AuditEntry
from core.runtime import Runtime
from portal.compliance.remediation import open_remediation_ticket, remediation_ticket_fields
from portal.compliance.store import record_answer, run_evaluation
from portal.tickets import service as svc
from portal.tickets.models import Ticket
from tests.conftest import sample_city

SYSTEM = "SYS-GAJ-008"  # level 3 (GAJ) on the government cloud
HOST_UNIT = "L3-CES1-01"  # 身份鉴别: linked to host baseline checks; answered 不符合 by the auditor
DRILL_UNIT = "L3-MMS1-43"  # 应急预案管理: 不符合 (no drill) in every evaluation here
GAJ = svc.Actor("gaj-user", "department_user", frozenset({"GAJ"}))
RSJ = svc.Actor("rsj-user", "department_user", frozenset({"RSJ"}))
REVIEWER = svc.Actor("reviewer", "security_reviewer", None)
ADMIN = svc.Actor("admin-b", "admin", None)
ENG = svc.Actor("eng", "platform_engineer", None)


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    with sample_city(tmp_path_factory, "remediation") as rt:
        with rt.transaction() as session:
            record_answer(session, rt, SYSTEM, unit=HOST_UNIT, result="不符合", auditor="li.auditor",
                          note="口令复杂度未配置")
        yield rt


@pytest.fixture(scope="module")
def report(city: Runtime) -> dict[str, Any]:
    return run_evaluation(city, SYSTEM, "li.auditor", probe_targets=[])[1]


def _req(report: dict[str, Any], unit: str) -> dict[str, Any]:
    return next(r for r in report["requirements"] if r["unit"] == unit)


def open_ticket(rt: Runtime, report: dict[str, Any], unit: str, actor: svc.Actor = GAJ, submit: bool = True) -> int:
    with rt.transaction() as s:
        return open_remediation_ticket(s, rt.audit, actor, report, unit, submit=submit).id


def act(rt: Runtime, ticket_id: int, fn: Any, actor: svc.Actor, **kw: Any) -> Ticket:
    with rt.transaction() as s:
        return fn(s, rt.audit, actor, s.get(Ticket, ticket_id), **kw)


def detail(rt: Runtime, ticket_id: int) -> dict[str, Any]:
    with rt.sessions() as s:
        return svc.ticket_dict(s, s.get(Ticket, ticket_id), detail=True)


def test_remediation_workflow_to_delivered(city: Runtime, report: dict[str, Any]) -> None:
    rt = city
    eval1 = report["report"]["evaluation_id"]
    assert _req(report, HOST_UNIT)["result"] == "不符合" and _req(report, DRILL_UNIT)["result"] == "不符合"
    host_id = open_ticket(rt, report, HOST_UNIT)
    out = detail(rt, host_id)
    # a level-3 system, no 密码应用方案 reference, no resources, no plan, no expiry: admitted
    assert out["state"] == "security_review" and out["type"] == "remediation"
    assert out["mlps_level"] == 3 and out["crypto_plan"] is None and out["expires_at"] is None
    assert out["type_label"] == {"zh": "等保整改", "en": "MLPS remediation"}
    assert out["plan"] is None and out["resources"] == {} and out["jobs"] == []
    assert [(c["check"], c["passed"]) for c in out["admission"]["checks"]] == [("schema", True), ("system", True)]
    ref = out["compliance"]
    assert ref["evaluation_id"] == eval1 and ref["unit"] == HOST_UNIT and ref["result"] == "不符合"
    assert ref["clause"] == _req(report, HOST_UNIT)["clause"] and "口令复杂度未配置" in ref["finding"]
    assert any(c.startswith("host.") for c in ref["checks"]) and ref["suggestion_zh"]

    with pytest.raises(svc.TicketForbidden, match=r"tickets\.review"):
        act(rt, host_id, svc.review, ENG, approve=True)
    with pytest.raises(svc.TicketConflict, match="security_review"):
        act(rt, host_id, svc.approve, svc.Actor("approver", "resource_approver", None))  # no resource approval
    act(rt, host_id, svc.review, ADMIN, approve=True, note="整改方案可行")
    out = detail(rt, host_id)
    assert out["state"] == "onboarding" and out["security_reviewer"] == "admin-b" and out["stage_deadline"] is None
    assert [(j["kind"], j["status"]) for j in out["jobs"]] == [("onboard", "queued")]  # a host baseline item
    with pytest.raises(svc.TicketConflict, match="still queued"):
        act(rt, host_id, svc.complete_remediation, ENG, evaluation_id=eval1 + 1)
    seen: list[dict[str, Any]] = []

    def onboarder(_rt: Runtime, info: dict[str, Any]) -> dict[str, Any]:
        seen.append(info)
        return {"status": "successful", "infra_job_id": 11}

    assert svc.run_pipeline(rt, host_id, onboarder) == "onboarding"  # re-hardened, not yet confirmed
    assert seen == [{"ticket": out["id"], "system_id": SYSTEM, "actor": "admin-b"}]
    out = detail(rt, host_id)
    assert out["jobs"][0]["status"] == "successful" and out["history"][-1]["action"] == "remediation_onboard"

    drill_id = open_ticket(rt, report, DRILL_UNIT, actor=ENG)  # filed by an engineer: no onboard.yml to run
    act(rt, drill_id, svc.review, REVIEWER, approve=True)
    assert detail(rt, drill_id)["jobs"] == []
    with pytest.raises(svc.TicketForbidden, match="may not complete"):
        act(rt, drill_id, svc.complete_remediation, ENG, evaluation_id=eval1 + 1)  # own ticket

    with pytest.raises(svc.TicketError, match="not later"):
        act(rt, host_id, svc.complete_remediation, ENG, evaluation_id=eval1)
    with pytest.raises(svc.TicketForbidden, match="不同人员"):
        act(rt, host_id, svc.complete_remediation, ADMIN, evaluation_id=eval1 + 1)  # the reviewer
    with pytest.raises(svc.TicketForbidden, match=r"tickets\.operate"):
        act(rt, host_id, svc.complete_remediation, GAJ, evaluation_id=eval1 + 1)

    with rt.transaction() as session:  # the re-test: the auditor finds the item fixed
        record_answer(session, rt, SYSTEM, unit=HOST_UNIT, result="符合", auditor="li.auditor", note="已加固")
    eval2 = run_evaluation(rt, SYSTEM, "li.auditor", probe_targets=[])[0].id
    with pytest.raises(svc.TicketError, match="still 不符合"):  # the drill is still missing
        act(rt, drill_id, svc.complete_remediation, ADMIN, evaluation_id=eval2)
    with pytest.raises(svc.TicketError, match="no evaluation"):
        act(rt, host_id, svc.complete_remediation, ENG, evaluation_id=eval2 + 100)
    act(rt, host_id, svc.complete_remediation, ENG, evaluation_id=eval2, note="复测符合")
    out = detail(rt, host_id)
    assert out["state"] == "delivered" and out["delivered_at"] is not None
    done = out["compliance"]["completion"]
    assert done["evaluation_id"] == eval2 and done["by"] == "eng" and done["result"] == "符合"
    assert out["compliance"]["unit"] == HOST_UNIT  # the finding is kept
    with pytest.raises(svc.TicketConflict):
        act(rt, host_id, svc.complete_remediation, ENG, evaluation_id=eval2)
    assert [h["to"] for h in out["history"]] == ["draft", "submitted", "admission", "security_review",
                                                 "onboarding", "onboarding", "delivered"]
    with rt.sessions() as s:
        entries = s.scalars(select(AuditEntry).where(AuditEntry.object_id == out["id"])
                            .order_by(AuditEntry.seq)).all()
        assert rt.audit.verify(s).ok
    assert [e.action for e in entries] == ["ticket.create", "ticket.submit", "ticket.admit", "ticket.admitted",
                                           "ticket.review", "ticket.remediation_onboard", "ticket.remediate"]
    last = json.loads(entries[-1].payload)
    assert last["confirmed_by_evaluation"] == eval2 and last["evaluation_id"] == eval1 and last["to"] == "delivered"
    years = svc.maintain(rt, now=svc.utcnow() + timedelta(days=3650))  # no expiry: never reclaimed
    assert out["id"] not in years["reclaiming"] + years["closed"]
    assert detail(rt, host_id)["state"] == "delivered"


def test_draft_and_refusals(city: Runtime, report: dict[str, Any]) -> None:
    rt = city
    eval1 = report["report"]["evaluation_id"]
    draft = open_ticket(rt, report, DRILL_UNIT, submit=False)
    assert detail(rt, draft)["state"] == "draft" and detail(rt, draft)["admission"] is None
    act(rt, draft, svc.submit_ticket, GAJ)
    assert detail(rt, draft)["state"] == "security_review"

    fields = {**remediation_ticket_fields(report, DRILL_UNIT), "department": "GAJ"}
    forged = {**fields, "compliance": {**fields["compliance"], "checks": ["host.password_complexity"],
                                       "clause": "x"}}
    with rt.transaction() as s:  # the stored evaluation's clause and checks, not the caller's
        stored = svc.compliance_ref(svc.create(s, rt.audit, GAJ, forged, submit=False))
    assert stored["checks"] == [c["check"] for c in _req(report, DRILL_UNIT)["checks"]] and stored["clause"] != "x"

    passed = next(r for r in report["requirements"] if r["result"] == "符合")
    cases = [
        ({"compliance": {**fields["compliance"], "unit": passed["unit"]}}, "only 不符合 / 部分符合"),
        ({"compliance": {**fields["compliance"], "evaluation_id": eval1 + 999}}, "no evaluation"),
        ({"compliance": None}, "needs compliance"),
        ({"resources": {"systems": []}}, "takes no resources"),
        ({"expires": "2027-06-30"}, "takes no expiry"),
        ({"system": "SYS-GAJ-006"}, f"no evaluation #{eval1} of SYS-GAJ-006"),
    ]
    for change, message in cases:
        with pytest.raises(svc.TicketError, match=message), rt.transaction() as s:
            svc.create(s, rt.audit, GAJ, {**fields, **change})
    with pytest.raises(svc.TicketError, match="takes no compliance"), rt.transaction() as s:
        svc.create(s, rt.audit, GAJ, {**fields, "type": "decommission", "crypto_plan": "MMYY-1"})
    with pytest.raises(svc.TicketForbidden, match="may not file tickets"), rt.transaction() as s:
        open_remediation_ticket(s, rt.audit, RSJ, report, DRILL_UNIT)
