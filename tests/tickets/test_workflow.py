"""The ticket workflow on SQLite and PostgreSQL: transitions and separation of duties, admission (schema, quota,
policy on the plan), 50 concurrent approvals → one provisioning job, timeouts, expiry / renewal / reclamation."""

from __future__ import annotations

import json
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import func, select

from core.audit import AuditEntry
from core.runtime import Runtime
from portal.tickets import service as svc
from portal.tickets.models import Ticket, TicketHistory, TicketJob
from tests.conftest import load_sample

SAMPLES = Path(__file__).resolve().parents[2] / "inventory" / "samples" / "tickets"
GAJ = svc.Actor("gaj-user", "department_user", frozenset({"GAJ", "GAJJJ", "GAJCRJ"}))
RSJ = svc.Actor("rsj-user", "department_user", frozenset({"RSJ"}))
REVIEWER = svc.Actor("reviewer", "security_reviewer", None)
APPROVER = svc.Actor("approver", "resource_approver", None)
ADMIN_A = svc.Actor("admin-a", "admin", None)
ADMIN_B = svc.Actor("admin-b", "admin", None)


def sample(name: str, **changes: Any) -> dict[str, Any]:
    data = yaml.safe_load((SAMPLES / f"{name}.yaml").read_text(encoding="utf-8"))
    data.update(changes)
    return data


@pytest.fixture
def city(rt: Runtime) -> Runtime:
    load_sample(rt)
    return rt


def file_ticket(rt: Runtime, data: dict[str, Any], actor: svc.Actor = GAJ, **kw: Any) -> int:
    with rt.transaction() as s:
        return svc.create(s, rt.audit, actor, data, net=rt.settings.net, **kw).id


def act(rt: Runtime, ticket_id: int, fn: Any, actor: svc.Actor, **kw: Any) -> Ticket:
    with rt.transaction() as s:
        ticket = s.get(Ticket, ticket_id)
        return fn(s, rt.audit, actor, ticket, **kw)


def state(rt: Runtime, ticket_id: int) -> str:
    with rt.sessions() as s:
        return s.get(Ticket, ticket_id).state


def detail(rt: Runtime, ticket_id: int) -> dict[str, Any]:
    with rt.sessions() as s:
        return svc.ticket_dict(s, s.get(Ticket, ticket_id), detail=True)


def deliver(rt: Runtime, data: dict[str, Any]) -> int:
    ticket_id = file_ticket(rt, data)
    act(rt, ticket_id, svc.review, REVIEWER, approve=True)
    act(rt, ticket_id, svc.approve, APPROVER)
    assert svc.run_pipeline(rt, ticket_id) == "delivered"
    return ticket_id


def audit_actions(rt: Runtime, ref: str) -> list[str]:
    with rt.sessions() as s:
        return list(s.scalars(select(AuditEntry.action).where(AuditEntry.object_id == ref).order_by(AuditEntry.seq)))


def test_workflow_with_separation_of_duties(city: Runtime) -> None:
    rt = city
    ticket_id = file_ticket(rt, sample("cloud_resources"), ADMIN_A)
    assert state(rt, ticket_id) == "security_review"
    with pytest.raises(svc.TicketForbidden, match="may not review"):
        act(rt, ticket_id, svc.review, ADMIN_A, approve=True)  # own ticket
    with pytest.raises(svc.TicketForbidden, match=r"tickets\.review"):
        act(rt, ticket_id, svc.review, APPROVER, approve=True)  # wrong role
    with pytest.raises(svc.TicketConflict, match="security_review"):
        act(rt, ticket_id, svc.approve, APPROVER)  # not yet reviewed
    act(rt, ticket_id, svc.review, ADMIN_B, approve=True)
    assert state(rt, ticket_id) == "resource_approval"
    with pytest.raises(svc.TicketForbidden, match="不同人员"):
        act(rt, ticket_id, svc.approve, ADMIN_B)  # reviewer may not also approve
    with pytest.raises(svc.TicketForbidden, match="may not approve"):
        act(rt, ticket_id, svc.approve, ADMIN_A)  # requester
    with pytest.raises(svc.TicketError, match="reason"):
        act(rt, ticket_id, svc.approve, APPROVER, approve=False)  # a rejection needs a note
    act(rt, ticket_id, svc.approve, APPROVER)
    assert state(rt, ticket_id) == "provisioning"
    assert svc.run_pipeline(rt, ticket_id) == "delivered"
    out = detail(rt, ticket_id)
    assert (out["requester"], out["security_reviewer"], out["resource_approver"]) == ("admin-a", "admin-b", "approver")
    jobs = {j["kind"]: j for j in out["jobs"]}
    assert jobs["provision"]["status"] == "planned" and jobs["provision"]["mode"] == "plan"
    assert jobs["provision"]["result"]["applied"] is False
    assert "nothing applied" in jobs["provision"]["result"]["notice"]
    assert jobs["onboard"]["status"] == "not_run"  # a new system: nothing to on-board, and it says so
    assert "尚未登记" in jobs["onboard"]["result"]["reason"]
    assert out["plan"]["mode"] == "plan" and out["plan"]["admissible"] is True
    assert any(out["id"] in json.dumps(r["properties"], ensure_ascii=False) for r in out["plan"]["resources"])
    assert out["mlps_level"] == 3  # from the GB/T 22240 answers
    actions = audit_actions(rt, out["id"])
    assert actions == ["ticket.create", "ticket.submit", "ticket.admit", "ticket.admitted", "ticket.review",
                       "ticket.approve", "ticket.provision", "ticket.deliver"]
    assert [h["to"] for h in out["history"]] == ["draft", "submitted", "admission", "security_review",
                                                 "resource_approval", "provisioning", "onboarding", "delivered"]
    with rt.sessions() as s:
        assert rt.audit.verify(s).ok


def test_fifty_concurrent_approvals_yield_one_provisioning_job(city: Runtime) -> None:
    rt = city
    ticket_id = file_ticket(rt, sample("cloud_migration"))
    act(rt, ticket_id, svc.review, REVIEWER, approve=True)
    barrier = threading.Barrier(50)
    outcomes: list[str] = []
    lock = threading.Lock()
    approvers = [APPROVER if i % 2 else svc.Actor(f"approver-{i}", "resource_approver", None) for i in range(50)]

    def approve(actor: svc.Actor) -> None:
        barrier.wait()
        try:
            act(rt, ticket_id, svc.approve, actor)
            result = "ok"
        except svc.TicketConflict:
            result = "conflict"
        except Exception as exc:  # anything else is a bug
            result = f"error: {type(exc).__name__}: {exc}"
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=approve, args=(a,)) for a in approvers]
    for th in threads:
        th.start()
    for th in threads:
        th.join(120)
    counts = Counter(outcomes)
    assert len(outcomes) == 50 and set(counts) <= {"ok", "conflict"}, counts
    with rt.sessions() as s:
        jobs = s.scalars(select(TicketJob).where(TicketJob.ticket_id == ticket_id)).all()
        ticket = s.get(Ticket, ticket_id)
        approvals = s.scalar(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.object_id == ticket.ref, AuditEntry.action == "ticket.approve"))
    assert [(j.kind, j.status) for j in jobs] == [("provision", "queued")]
    assert approvals == 1 and ticket.state == "provisioning"
    winner = ticket.resource_approver
    # the winner and its own duplicates succeed (idempotent); every other approver sees a conflict
    same = sum(1 for a in approvers if a.name == winner)
    assert counts["ok"] == same and counts["conflict"] == 50 - same
    # several pipeline runners at once: each job is claimed once
    states: list[str] = []
    runners = [threading.Thread(target=lambda: states.append(svc.run_pipeline(rt, ticket_id))) for _ in range(5)]
    for th in runners:
        th.start()
    for th in runners:
        th.join(120)
    assert state(rt, ticket_id) == "delivered"
    with rt.sessions() as s:
        kinds = sorted(s.scalars(select(TicketJob.kind).where(TicketJob.ticket_id == ticket_id)))
        assert kinds == ["onboard", "provision"]
        assert rt.audit.verify(s).ok
    assert audit_actions(rt, ticket.ref).count("ticket.deliver") == 1


def test_admission_refuses_ssh_from_anywhere_and_shows_the_violation(city: Runtime) -> None:
    rt = city
    data = sample("cloud_resources")
    data["resources"]["systems"][0]["ingress"].append({"protocol": "tcp", "port_min": 22, "remote_cidr": "0.0.0.0/0"})
    ticket_id = file_ticket(rt, data)
    out = detail(rt, ticket_id)
    assert out["state"] == "rejected"
    checks = {c["check"]: c for c in out["admission"]["checks"]}
    assert checks["schema"]["passed"] and checks["quota"]["passed"] and not checks["policy"]["passed"]
    (message,) = checks["policy"]["messages"]
    assert message.startswith("YS-CLOUD-001") and "0.0.0.0/0" in message and "22" in message
    assert out["plan"]["admissible"] is False  # the plan is kept on the ticket, with the policy report
    broken = [r for r in out["plan"]["policy"]["results"] if not r["passed"]]
    assert [r["rule_id"] for r in broken] == ["YS-CLOUD-001"]
    assert out["history"][-1]["action"] == "admission_rejected" and "0.0.0.0/0" in out["history"][-1]["note"]
    assert out["jobs"] == []
    with pytest.raises(svc.TicketConflict):
        act(rt, ticket_id, svc.review, REVIEWER, approve=True)


def test_admission_quota(city: Runtime) -> None:
    rt = city
    data = sample("cloud_resources")
    data["resources"]["systems"][0]["instances"][0]["count"] = 20  # 20 × g.2c4g + 1 × g.8c32g: 21 instances
    first = file_ticket(rt, data)
    assert state(rt, first) == "security_review"
    second = file_ticket(rt, data)  # 21 held + 21 requested > 40
    out = detail(rt, second)
    assert out["state"] == "rejected"
    quota = next(c for c in out["admission"]["checks"] if c["check"] == "quota")
    assert not quota["passed"] and quota["held"]["instances"] == 21
    assert any(m.startswith("instances: 21 held + 21 requested > quota 40") for m in quota["messages"])
    act(rt, first, svc.withdraw, GAJ)  # a withdrawn ticket holds nothing
    assert state(rt, file_ticket(rt, data)) == "security_review"


@pytest.mark.parametrize(("change", "message"), [
    ({"crypto_plan": None}, "密码应用方案"),
    ({"data_catalog_id": ""}, "data_catalog_id"),
    ({"type": "上云申请"}, "unknown ticket type"),
    ({"mlps_level": 2}, "does not match the GB/T 22240"),
    ({"department": "RSJ"}, "may not file tickets for department RSJ"),
    ({"expires": "2020-01-01"}, "not in the future"),
    ({"resources": None}, "needs resources"),
])
def test_bad_tickets_are_refused_with_the_reason(city: Runtime, change: dict[str, Any], message: str) -> None:
    with pytest.raises((svc.TicketError, svc.TicketForbidden), match=message):
        file_ticket(city, sample("cloud_resources", **change))
    with city.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Ticket)) == 0


def test_register_systems_are_checked(city: Runtime) -> None:
    with pytest.raises(svc.TicketError, match="belongs to RSJ"):
        file_ticket(city, sample("change", system="SYS-RSJ-001"))
    with pytest.raises(svc.TicketError, match="differs from the register's level 3"):
        file_ticket(city, sample("change", mlps_level=4))
    with pytest.raises(svc.TicketError, match="not in the register"):
        file_ticket(city, sample("change", system="SYS-GAJ-999"))


def test_department_scoping(city: Runtime) -> None:
    rt = city
    ticket_id = file_ticket(rt, sample("change"))
    with rt.sessions() as s:
        ref = s.get(Ticket, ticket_id).ref
        with pytest.raises(svc.TicketNotFound):
            svc.visible_ticket(s, RSJ, ref)
        assert svc.list_tickets(s, RSJ)[1] == 0
        assert svc.list_tickets(s, GAJ)[1] == 1
        assert svc.visible_ticket(s, REVIEWER, ref).id == ticket_id


def test_timeouts_escalate_overdue_approvals(city: Runtime) -> None:
    rt = city
    ticket_id = file_ticket(rt, sample("ipv6"))
    with rt.sessions() as s:
        ticket = s.get(Ticket, ticket_id)
        deadline, ref = svc.aware(ticket.stage_deadline), ticket.ref
    assert deadline is not None
    assert svc.maintain(rt, now=deadline - timedelta(minutes=1))["escalated"] == []
    assert svc.maintain(rt, now=deadline + timedelta(hours=1))["escalated"] == [ref]
    assert svc.maintain(rt, now=deadline + timedelta(hours=2))["escalated"] == []  # once
    out = detail(rt, ticket_id)
    assert out["escalated_at"] is not None and out["state"] == "security_review"
    assert out["history"][-1]["action"] == "escalate" and "overdue" in out["history"][-1]["note"]
    assert audit_actions(rt, ref).count("ticket.escalate") == 1
    act(rt, ticket_id, svc.review, REVIEWER, approve=True)  # the next stage has its own clock
    out = detail(rt, ticket_id)
    assert out["escalated_at"] is None and out["stage_deadline"] is not None
    later = datetime.fromisoformat(out["stage_deadline"]) + timedelta(minutes=1)
    assert svc.maintain(rt, now=later)["escalated"] == [ref]


def test_expiry_reminder_renewal_and_reclamation(city: Runtime) -> None:
    rt = city
    ticket_id = deliver(rt, sample("change"))
    out = detail(rt, ticket_id)
    ref, expires = out["id"], datetime.fromisoformat(out["expires_at"])
    planned = out["jobs"][0]["result"]["summary"]["resources"]
    assert svc.maintain(rt, now=expires - timedelta(days=31))["reminded"] == []
    assert svc.maintain(rt, now=expires - timedelta(days=29))["reminded"] == [ref]
    assert svc.maintain(rt, now=expires - timedelta(days=28))["reminded"] == []
    with pytest.raises(svc.TicketNotFound):
        act(rt, ticket_id, svc.renew, RSJ, expires=expires + timedelta(days=365))
    act(rt, ticket_id, svc.renew, GAJ, expires=expires + timedelta(days=365), now=expires - timedelta(days=20))
    out = detail(rt, ticket_id)
    assert out["state"] == "renewed" and out["renewals"] == 1 and out["reminded_at"] is None
    new_expiry = datetime.fromisoformat(out["expires_at"])
    assert new_expiry == expires + timedelta(days=365)
    assert svc.maintain(rt, now=expires + timedelta(days=1)) == {"escalated": [], "reminded": [], "reclaiming": [],
                                                                  "closed": []}
    moved = svc.maintain(rt, now=new_expiry + timedelta(hours=1))
    assert moved["reclaiming"] == [ref] and moved["closed"] == []
    out = detail(rt, ticket_id)
    grace = datetime.fromisoformat(out["grace_until"])
    assert out["state"] == "reclaiming" and grace == new_expiry + timedelta(days=14)
    assert svc.maintain(rt, now=grace - timedelta(hours=1))["closed"] == []
    assert svc.maintain(rt, now=grace + timedelta(hours=1))["closed"] == [ref]
    out = detail(rt, ticket_id)
    assert out["state"] == "closed"
    reclaim = next(j for j in out["jobs"] if j["kind"] == "resource_decommission")
    assert reclaim["mode"] == "plan" and reclaim["result"]["applied"] is False
    assert "nothing applied" in reclaim["result"]["notice"] and reclaim["result"]["count"] == planned
    assert [a for a in audit_actions(rt, ref) if a in ("ticket.expiry_reminder", "ticket.renew", "ticket.expire",
                                                       "ticket.reclaim")] == [
        "ticket.expiry_reminder", "ticket.renew", "ticket.expire", "ticket.reclaim"]


def test_renewal_during_grace_period_keeps_the_resources(city: Runtime) -> None:
    rt = city
    ticket_id = deliver(rt, sample("internet_exposure"))
    out = detail(rt, ticket_id)
    expires = datetime.fromisoformat(out["expires_at"])
    plan_types = out["plan"]["summary"]["by_type"]
    assert plan_types["openstack:networking/floatingIp:FloatingIp"] == 1  # approved by the security reviewer
    svc.maintain(rt, now=expires + timedelta(days=1))
    assert state(rt, ticket_id) == "reclaiming"
    act(rt, ticket_id, svc.renew, GAJ, expires=expires + timedelta(days=200), now=expires + timedelta(days=2))
    assert svc.maintain(rt, now=expires + timedelta(days=30))["closed"] == []
    assert state(rt, ticket_id) == "renewed"


def test_decommission_records_a_destroy_plan(city: Runtime) -> None:
    rt = city
    ticket_id = deliver(rt, sample("decommission"))
    out = detail(rt, ticket_id)
    (job,) = out["jobs"]
    assert job["kind"] == "resource_decommission" and job["status"] == "planned"
    assert job["result"]["action"] == "destroy" and job["result"]["applied"] is False
    assert job["result"]["count"] == 4 and job["result"]["source"] == "register hosts of SYS-GAJ-004"


def test_failed_onboarding_is_recorded_and_retried(city: Runtime) -> None:
    rt = city
    ticket_id = file_ticket(rt, sample("cloud_migration"))
    act(rt, ticket_id, svc.review, REVIEWER, approve=True)
    act(rt, ticket_id, svc.approve, APPROVER)
    seen: list[dict[str, Any]] = []

    def failing(_rt: Runtime, info: dict[str, Any]) -> dict[str, Any]:
        seen.append(info)
        return {"status": "failed", "reason": "sshd unreachable on gaj-jydlxx-web01"}

    assert svc.run_pipeline(rt, ticket_id, failing) == "onboarding"
    assert seen[0]["system_id"] == "SYS-GAJ-006" and seen[0]["actor"] == "approver"
    out = detail(rt, ticket_id)
    onboard = next(j for j in out["jobs"] if j["kind"] == "onboard")
    assert onboard["status"] == "failed" and "unreachable" in onboard["result"]["reason"]
    assert out["history"][-1]["action"] == "onboard_failed"
    with pytest.raises(svc.TicketForbidden):
        act(rt, ticket_id, svc.retry_onboarding, GAJ)
    act(rt, ticket_id, svc.retry_onboarding, svc.Actor("eng", "platform_engineer", None))
    ok = svc.run_pipeline(rt, ticket_id, lambda _rt, _info: {"status": "successful", "infra_job_id": 7})
    assert ok == "delivered"
    onboard = next(j for j in detail(rt, ticket_id)["jobs"] if j["kind"] == "onboard")
    assert onboard["status"] == "successful" and onboard["infra_job_id"] == 7


def test_idle_systems_report(city: Runtime) -> None:
    with city.sessions() as s:
        now = datetime(2026, 11, 30, tzinfo=UTC)
        idle = svc.idle_systems(s, 90, now=now)
        ids = {r["system"] for r in idle}
        assert all(r["idle_days"] is None or r["idle_days"] >= 90 for r in idle)
        assert "SYS-ZFB-003" in ids  # planned, never active
        active = {r["system"] for r in svc.idle_systems(s, 30, now=now)}
        assert ids <= active and "SYS-RSJ-005" in active  # last activity 2026-07-03
        assert "SYS-GAJ-001" not in active  # active on 2026-11-11
        scoped = svc.idle_systems(s, 30, now=now, departments=frozenset({"RSJ"}))
        assert scoped and {r["department"] for r in scoped} == {"RSJ"}
        history = s.scalar(select(func.count()).select_from(TicketHistory))
        assert history == 0


def test_soc_events_take_a_system_off_the_idle_list(city: Runtime, tmp_path: Path) -> None:
    from soc.activity import mark_active_systems
    from soc.ecs import event_id
    from soc.store.sqlite import SQLiteStore

    now = datetime(2026, 11, 30, 12, tzinfo=UTC)
    store = SQLiteStore(tmp_path / "events.db")

    def event(system: str, at: datetime) -> tuple[str, dict[str, Any]]:
        doc = {"@timestamp": at.strftime("%Y-%m-%dT%H:%M:%S.000Z"), "message": f"login on {system}",
               "event": {"kind": "event", "dataset": "system.auth"}, "gov": {"system": {"id": system}}}
        return event_id("activity", f"{system}{at.isoformat()}"), doc

    try:
        store.write([event("SYS-RSJ-005", now - timedelta(minutes=5)),   # within the window
                     event("SYS-ZFB-003", now - timedelta(days=3))])     # before it: not counted
        with city.transaction() as s:
            assert "SYS-RSJ-005" in {r["system"] for r in svc.idle_systems(s, 30, now=now)}
            updated = mark_active_systems(s, store, now - timedelta(hours=1), now)
        assert updated == ["SYS-RSJ-005"]
        with city.sessions() as s:
            idle = {r["system"] for r in svc.idle_systems(s, 30, now=now)}
        assert "SYS-RSJ-005" not in idle and "SYS-ZFB-003" in idle
        with city.transaction() as s:  # an older window: ZFB-003 was active then; RSJ-005 is not moved back
            assert mark_active_systems(s, store, now - timedelta(days=4), now - timedelta(days=2)) == ["SYS-ZFB-003"]
            store.write([event("SYS-RSJ-005", now - timedelta(days=3))])
            assert mark_active_systems(s, store, now - timedelta(days=4), now - timedelta(days=2)) == []
        with city.sessions() as s:
            idle = {r["system"]: r for r in svc.idle_systems(s, 1, now=now)}
        assert "SYS-RSJ-005" not in idle and idle["SYS-ZFB-003"]["idle_days"] == 2
    finally:
        store.close()
