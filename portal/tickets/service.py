"""The ticket workflow: role-checked, race-safe transitions, each in the history table and the audit chain.

Every state change is a conditional ``UPDATE … WHERE state IN (…)``: of several concurrent callers exactly one
moves the ticket, the others see a conflict (or, when they asked for what already happened, an idempotent no-op).
Jobs are unique per ticket and kind, so an approval yields at most one provisioning job. The caller owns the
transaction (one per request / CLI command); :func:`run_pipeline` and :func:`maintain` open their own.

Provisioning runs the cloud program in plan mode only: the job records the plan, labelled "plan — nothing
applied"; nothing is created. On-boarding runs the Ansible ``onboard.yml`` job where a lab (or automation
connection) exists; elsewhere the job records honestly that it did not run.

A 等保整改 (``remediation``) ticket fixes one 不符合 item of an evaluation of a registered system: no resources, no
plan, no expiry. submitted → admission (schema and the system) → security_review (the reviewer accepts the
remediation) → onboarding (the remediation work; ``onboard.yml`` runs again when the finding is a host baseline
item) → delivered when a platform engineer marks it done naming a later evaluation in which the unit is 符合.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.audit import AuditChain
from core.runtime import Runtime
from core.settings import NetSettings
from inventory.models import Department, System, aware, utcnow
from portal.rbac import policy
from portal.tickets.models import (
    ACTIVE_STATES,
    APPROVAL_STATES,
    FINAL_STATES,
    Ticket,
    TicketHistory,
    TicketJob,
    ticket_ref,
)
from portal.tickets.schema import TicketIn, ticket_policy

if TYPE_CHECKING:
    from soc.service import Soc

PLAN_NOTICE = "plan — nothing applied / 计划模式，未实际执行"
DESTROY_NOTICE = "destroy plan — nothing applied / 销毁计划，未实际执行"
DATA_CLASS_ORDER = ("general", "important", "core")
FLAVOR = re.compile(r"(\d+)c(\d+)g", re.IGNORECASE)
HOLDING_STATES = ("security_review", "resource_approval", "provisioning", "onboarding", "delivered", "renewed",
                  "reclaiming")
WITHDRAWABLE = ("draft", "security_review", "resource_approval")
APPROVED_STATES = ("provisioning", "onboarding", "delivered", "renewed", "reclaiming", "closed")
LABEL_KEYS = ("department", "ticket_id", "mlps_level", "data_class")


class TicketError(ValueError):
    """The input is wrong (422); the message names the field and the reason."""


class TicketForbidden(PermissionError):
    """The actor may not do this (403): role, department or separation of duties."""


class TicketConflict(RuntimeError):
    """The ticket is not in a state that allows this (409), e.g. someone else acted first."""


class TicketNotFound(LookupError):
    """No such ticket, or not visible to the actor (404)."""


@dataclass(frozen=True)
class Actor:
    """Who acts: user name, role and the departments the role may see (None: all)."""

    name: str
    role: str
    departments: frozenset[str] | None

    def can(self, permission: str) -> bool:
        return policy().allows(self.role, permission)

    def require(self, permission: str) -> None:
        if not self.can(permission):
            raise TicketForbidden(f"role '{self.role}' lacks permission '{permission}' / 无权限")

    def sees(self, department: str) -> bool:
        return self.departments is None or department in self.departments


Onboarder = Callable[[Runtime, dict[str, Any]], dict[str, Any]]




def _dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def _load(text: str | None) -> Any:
    return json.loads(text) if text else None


# --- transitions ------------------------------------------------------------------------------------------------

def _record(session: Session, audit: AuditChain, ticket: Ticket, actor: str, action: str, from_state: str | None,
            to_state: str, note: str | None = None, payload: Mapping[str, Any] | None = None,
            now: datetime | None = None) -> None:
    session.add(TicketHistory(ticket_id=ticket.id, at=now or utcnow(), actor=actor[:64], action=action,
                              from_state=from_state, to_state=to_state, note=note))
    audit.append(session, actor=actor, action=f"ticket.{action}", object_type="ticket", object_id=ticket.ref,
                 payload={"from": from_state, "to": to_state, "type": ticket.type,
                          "department": ticket.department_code, **({"note": note} if note else {}),
                          **(payload or {})})


def _move(session: Session, audit: AuditChain, ticket: Ticket, from_states: tuple[str, ...], to_state: str,
          actor: str, action: str, *, note: str | None = None, payload: Mapping[str, Any] | None = None,
          now: datetime | None = None, **values: Any) -> None:
    """Move the ticket if (and only if) it is still in one of ``from_states``; else TicketConflict."""
    now = now or utcnow()
    before = ticket.state if ticket.state in from_states else from_states[0]
    result = session.execute(
        update(Ticket).where(Ticket.id == ticket.id, Ticket.state.in_(from_states))
        .values(state=to_state, version=Ticket.version + 1, updated_at=now, **values)
        .execution_options(synchronize_session=False))
    session.refresh(ticket)
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise TicketConflict(f"ticket {ticket.ref} is {ticket.state}, not {' / '.join(from_states)}: "
                             f"cannot {action} / 工单状态已变化")
    _record(session, audit, ticket, actor, action, before, to_state, note, payload, now)


def _deadline(stage: str, now: datetime) -> datetime:
    return now + timedelta(hours=ticket_policy().timeouts_hours[stage])


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for e in exc.errors():
        where = ".".join(str(p) for p in e["loc"]) or "ticket"
        parts.append(f"{where}: {e['msg']}")
    return "; ".join(parts)


def create(session: Session, audit: AuditChain, actor: Actor, data: TicketIn | Mapping[str, Any], *,
           net: NetSettings | None = None, submit: bool = True, now: datetime | None = None) -> Ticket:
    """Create a ticket (draft) from its file / API form, and submit it unless ``submit`` is false."""
    actor.require("tickets.submit")
    now = now or utcnow()
    try:
        spec = data if isinstance(data, TicketIn) else TicketIn.model_validate(dict(data))
    except ValidationError as exc:
        raise TicketError(f"invalid ticket / 工单内容有误: {_validation_message(exc)}") from None
    if session.get(Department, spec.department) is None:
        raise TicketError(f"department: unknown department '{spec.department}'")
    if not actor.sees(spec.department):
        raise TicketForbidden(f"{actor.name} may not file tickets for department {spec.department} / 无权为该部门提交")
    level, data_class = spec.mlps_level, spec.data_class
    if spec.system:
        system = session.get(System, spec.system)
        if system is None:
            raise TicketError(f"system: '{spec.system}' is not in the register")
        if system.department_code != spec.department:
            raise TicketError(f"system: {spec.system} belongs to {system.department_code}, not {spec.department}")
        if system.status == "decommissioned":
            raise TicketError(f"system: {spec.system} is decommissioned")
        if level is not None and level != system.mlps_level:
            raise TicketError(f"mlps_level {level} differs from the register's level {system.mlps_level} for "
                              f"{spec.system} (change the grading in the register first)")
        if data_class is not None and data_class != system.data_class:
            raise TicketError(f"data_class {data_class} differs from the register's {system.data_class} for "
                              f"{spec.system}")
        level, data_class = system.mlps_level, system.data_class
    assert level is not None and data_class is not None
    rule = ticket_policy().types[spec.type]
    if rule.compliance and spec.compliance is not None:
        assert spec.system is not None  # the type's rule: an existing system
        req = _check_finding(session, spec.system, spec.compliance.evaluation_id, spec.compliance.unit)
        spec.compliance = spec.compliance.model_copy(update={  # the stored evaluation's word, not the caller's
            "result": req["result"], "clause": str(req.get("clause") or "")[:64],
            "control_point": str(req.get("control_point") or "")[:128],
            "checks": [c["check"] for c in req.get("checks", [])][:64]})
    if rule.crypto_plan and level >= 3 and not spec.crypto_plan:
        raise TicketError(f"crypto_plan: level {level} systems need a 密码应用方案 reference (required at level ≥ 3)")
    expires_at = spec.expires_at
    if expires_at is not None:
        limit = now + timedelta(days=ticket_policy().expiry.max_days)
        if expires_at <= now:
            raise TicketError(f"expires: {expires_at.date()} is not in the future")
        if expires_at > limit:
            raise TicketError(f"expires: {expires_at.date()} is beyond the longest term ({limit.date()})")
    ticket = Ticket(type=spec.type, state="draft", title=spec.title, department_code=spec.department,
                    system_id=spec.system, new_system=_dump(spec.new_system.model_dump()) if spec.new_system else None,
                    mlps_level=level, grading=_dump(spec.grading.model_dump()) if spec.grading else None,
                    data_class=data_class, resources=_dump(_resources_of(spec)), expires_at=expires_at,
                    justification=spec.justification, data_catalog_id=spec.data_catalog_id,
                    crypto_plan_ref=spec.crypto_plan, requester=actor.name, renewals=0, version=0,
                    created_at=now, updated_at=now)
    session.add(ticket)
    session.flush()
    _record(session, audit, ticket, actor.name, "create", None, "draft", now=now,
            payload={"system": spec.system, "mlps_level": level, "data_class": data_class})
    if submit:
        submit_ticket(session, audit, actor, ticket, net=net, now=now)
    return ticket


def _resources_of(spec: TicketIn) -> dict[str, Any]:
    """What the ``resources`` column keeps: the spec, or a remediation ticket's compliance reference."""
    if spec.compliance is not None:
        return {"compliance": spec.compliance.model_dump()}
    return spec.resources or {}


def compliance_ref(ticket: Ticket) -> dict[str, Any] | None:
    """The 等保 finding of a remediation ticket (with its completion once done); None for other types."""
    if ticket.type != "remediation":
        return None
    return (_load(ticket.resources) or {}).get("compliance")


def _check_finding(session: Session, system_id: str, evaluation_id: int, unit: str) -> dict[str, Any]:
    """The requirement ``unit`` of a stored evaluation of ``system_id``, which must be 不符合 / 部分符合."""
    from portal.compliance.remediation import FAILED, stored_requirement

    try:
        req = stored_requirement(session, system_id, evaluation_id, unit)
    except LookupError as exc:
        raise TicketError(f"compliance: {exc}") from None
    if req["result"] not in FAILED:
        raise TicketError(f"compliance: unit {unit} is {req['result']} in evaluation #{evaluation_id}: only "
                          "不符合 / 部分符合 items are remediated")
    return req


def submit_ticket(session: Session, audit: AuditChain, actor: Actor, ticket: Ticket, *,
                  net: NetSettings | None = None, now: datetime | None = None) -> Ticket:
    """draft → submitted → admission (automatic: schema, quota, policy on the plan) → security_review | rejected."""
    actor.require("tickets.submit")
    if ticket.requester != actor.name and actor.role != "admin":
        raise TicketForbidden(f"only the requester ({ticket.requester}) submits ticket {ticket.ref}")
    now = now or utcnow()
    _move(session, audit, ticket, ("draft",), "submitted", actor.name, "submit", now=now, submitted_at=now)
    _move(session, audit, ticket, ("submitted",), "admission", "system:admission", "admit", now=now)
    result = admission(session, ticket, net or NetSettings())
    summary = {"passed": result["passed"], "failed_checks": [c["check"] for c in result["checks"] if not c["passed"]]}
    if result["passed"]:
        _move(session, audit, ticket, ("admission",), "security_review", "system:admission", "admitted", now=now,
              payload=summary, admission=_dump(result), plan=_dump(result.get("plan")),
              stage_deadline=_deadline("security_review", now))
    else:
        reasons = "; ".join(m for c in result["checks"] if not c["passed"] for m in c["messages"])
        _move(session, audit, ticket, ("admission",), "rejected", "system:admission", "admission_rejected",
              now=now, note=reasons[:4000], payload=summary, admission=_dump(result), plan=_dump(result.get("plan")),
              closed_at=now)
    return ticket


def _forbid_self(actor: Actor, ticket: Ticket, what: str) -> None:
    if actor.name == ticket.requester:
        raise TicketForbidden(f"{actor.name} requested ticket {ticket.ref} and may not {what} it "
                              "/ 申请人不得审批本人工单")


def review(session: Session, audit: AuditChain, actor: Actor, ticket: Ticket, *, approve: bool,
           note: str | None = None, now: datetime | None = None) -> Ticket:
    """Security review: security_review → resource_approval, or → rejected."""
    actor.require("tickets.review")
    _forbid_self(actor, ticket, "review")
    now = now or utcnow()
    if approve and ticket.type == "remediation":
        ref = compliance_ref(ticket) or {}
        baseline = any(str(c).startswith("host.") for c in ref.get("checks", []))
        _move(session, audit, ticket, ("security_review",), "onboarding", actor.name, "review", note=note,
              now=now, security_reviewer=actor.name, stage_deadline=None, escalated_at=None,
              payload={"unit": ref.get("unit"), "evaluation_id": ref.get("evaluation_id"),
                       "onboard": baseline})
        if baseline:  # a host baseline item: onboard.yml runs again (run_pipeline)
            session.add(TicketJob(ticket_id=ticket.id, kind="onboard", mode="ansible", status="queued",
                                  requested_by=actor.name, created_at=now))
            session.flush()
    elif approve:
        _move(session, audit, ticket, ("security_review",), "resource_approval", actor.name, "review", note=note,
              now=now, security_reviewer=actor.name, stage_deadline=_deadline("resource_approval", now),
              escalated_at=None)
    else:
        if not note:
            raise TicketError("note: a rejection needs a reason / 驳回须说明理由")
        _move(session, audit, ticket, ("security_review",), "rejected", actor.name, "review_reject", note=note,
              now=now, security_reviewer=actor.name, stage_deadline=None, closed_at=now)
    return ticket


def approve(session: Session, audit: AuditChain, actor: Actor, ticket: Ticket, *, approve: bool = True,
            note: str | None = None, now: datetime | None = None) -> Ticket:
    """Resource approval: resource_approval → provisioning with one queued provisioning job, or → rejected.

    Idempotent: the approver who already approved gets the ticket back unchanged (no second job)."""
    actor.require("tickets.approve")
    _forbid_self(actor, ticket, "approve")
    if ticket.security_reviewer == actor.name:
        raise TicketForbidden(f"{actor.name} did the security review of {ticket.ref}; resource approval needs "
                              "someone else / 安全审核与资源审批须由不同人员完成")
    now = now or utcnow()
    if approve and ticket.state in APPROVED_STATES and ticket.resource_approver == actor.name:
        return ticket  # asked again for what already happened
    if not approve:
        if not note:
            raise TicketError("note: a rejection needs a reason / 驳回须说明理由")
        _move(session, audit, ticket, ("resource_approval",), "rejected", actor.name, "approve_reject", note=note,
              now=now, resource_approver=actor.name, stage_deadline=None, closed_at=now)
        return ticket
    try:
        _move(session, audit, ticket, ("resource_approval",), "provisioning", actor.name, "approve", note=note,
              now=now, resource_approver=actor.name, stage_deadline=None)
    except TicketConflict:
        if ticket.resource_approver == actor.name and ticket.state in APPROVED_STATES:
            return ticket  # a concurrent duplicate of our own approval
        raise
    kind = "resource_decommission" if ticket.type == "decommission" else "provision"
    session.add(TicketJob(ticket_id=ticket.id, kind=kind, mode="plan", status="queued", requested_by=actor.name,
                          created_at=now))
    session.flush()
    return ticket


def withdraw(session: Session, audit: AuditChain, actor: Actor, ticket: Ticket, *, note: str | None = None,
             now: datetime | None = None) -> Ticket:
    """The requester (or an admin) withdraws a ticket that is not yet approved."""
    if ticket.requester != actor.name and actor.role != "admin":
        raise TicketForbidden(f"only the requester ({ticket.requester}) withdraws ticket {ticket.ref}")
    now = now or utcnow()
    _move(session, audit, ticket, WITHDRAWABLE, "withdrawn", actor.name, "withdraw", note=note, now=now,
          stage_deadline=None, closed_at=now)
    return ticket


def complete_remediation(session: Session, audit: AuditChain, actor: Actor, ticket: Ticket, *, evaluation_id: int,
                         note: str | None = None, now: datetime | None = None) -> Ticket:
    """A platform engineer marks a 等保整改 ticket done: onboarding → delivered, naming the later evaluation of the
    system in which the unit is 符合. Neither the requester nor the security reviewer may do it."""
    actor.require("tickets.operate")
    _forbid_self(actor, ticket, "complete")
    if ticket.security_reviewer == actor.name:
        raise TicketForbidden(f"{actor.name} accepted the remediation of {ticket.ref}; marking it done needs someone "
                              "else / 审核与整改确认须由不同人员完成")
    if ticket.type != "remediation":
        raise TicketConflict(f"ticket {ticket.ref} is not a 等保整改 ticket: nothing to mark done")
    ref = compliance_ref(ticket) or {}
    if ticket.state != "onboarding":
        raise TicketConflict(f"ticket {ticket.ref} is {ticket.state}, not onboarding: cannot complete / 工单状态已变化")
    busy = session.scalar(select(TicketJob.status).where(TicketJob.ticket_id == ticket.id,
                                                         TicketJob.kind == "onboard"))
    if busy in ("queued", "running"):
        raise TicketConflict(f"ticket {ticket.ref}: the on-boarding (onboard.yml) is still {busy} / 上线加固尚未完成")
    if evaluation_id <= int(ref["evaluation_id"]):
        raise TicketError(f"evaluation_id: #{evaluation_id} is not later than the evaluation of the finding "
                          f"(#{ref['evaluation_id']}); evaluate the system again / 请重新测评")
    from portal.compliance.remediation import stored_requirement

    try:
        req = stored_requirement(session, ticket.system_id or "", evaluation_id, ref["unit"])
    except LookupError as exc:
        raise TicketError(f"evaluation_id: {exc}") from None
    if req["result"] != "符合":
        raise TicketError(f"evaluation_id: unit {ref['unit']} is still {req['result']} in evaluation "
                          f"#{evaluation_id}; it must be 符合 / 复测仍未符合")
    now = now or utcnow()
    done = {**ref, "completion": {"by": actor.name, "at": now.isoformat(), "evaluation_id": evaluation_id,
                                  "result": req["result"], "note": note}}
    _move(session, audit, ticket, ("onboarding",), "delivered", actor.name, "remediate", note=note, now=now,
          payload={"unit": ref["unit"], "evaluation_id": ref["evaluation_id"], "confirmed_by_evaluation": evaluation_id,
                   "result": req["result"]},
          delivered_at=now, resources=_dump({"compliance": done}))
    return ticket


def renew(session: Session, audit: AuditChain, actor: Actor, ticket: Ticket, expires: datetime, *,
          note: str | None = None, now: datetime | None = None) -> Ticket:
    """Renewal by the department: a new expiry for resources in use (also during the grace period)."""
    actor.require("tickets.submit")
    if not actor.sees(ticket.department_code):
        raise TicketNotFound(f"no ticket {ticket.ref} / 工单不存在")
    now = now or utcnow()
    expires = aware(expires) or expires
    limit = now + timedelta(days=ticket_policy().expiry.max_days)
    if not now < expires <= limit:
        raise TicketError(f"expires: {expires.date()} must be after today and at most {limit.date()}")
    if ticket.expires_at is None:
        raise TicketConflict(f"ticket {ticket.ref} has no expiry to renew")
    _move(session, audit, ticket, (*ACTIVE_STATES, "reclaiming"), "renewed", actor.name, "renew", note=note, now=now,
          payload={"expires": expires.isoformat(), "previous": aware(ticket.expires_at).isoformat()},  # type: ignore[union-attr]
          expires_at=expires, reminded_at=None, grace_until=None, renewals=Ticket.renewals + 1)
    return ticket


# --- admission --------------------------------------------------------------------------------------------------

def _raise(spec_data: dict[str, Any], level: int, data_class: str) -> dict[str, Any]:
    spec_data["mlps_level"] = max(spec_data["mlps_level"], level)
    spec_data["data_class"] = max(spec_data["data_class"], data_class, key=DATA_CLASS_ORDER.index)
    return spec_data


def _labels_only(entry: Mapping[str, Any], labels: Mapping[str, Any], what: str) -> dict[str, Any]:
    """The entry without the labels (taken from the ticket); a label given differently is an error."""
    out = dict(entry)
    for key in LABEL_KEYS:
        if key in out:
            if out[key] != labels[key]:
                raise TicketError(f"resources.{what}.{key}: '{out[key]}' differs from the ticket's '{labels[key]}'")
            del out[key]
    return out


def build_request(session: Session, ticket: Ticket, net: NetSettings, *, exposure_approver: str | None = None) -> Any:
    """The CloudRequest of the ticket: its resources with the ticket's labels, register data filled in.

    - ``tenant: {ipv4_cidr, …}``: the department's tenant from the register and IPAM (IPv6 /64);
    - ``systems: [...]``: an entry without ``instances`` for a registered system takes the register's hosts;
      ``internet_exposure: {instance, pool}`` becomes approved only at provisioning, by the security reviewer;
    - ``k8s: [...]``: the department's namespace with the entry's overrides.
    Raises TicketError (bad spec) or pydantic's ValidationError."""
    from infra.cloud.from_register import k8s_spec, system_spec, tenant_spec
    from infra.cloud.specs import CloudRequest, K8sSpec, SystemSpec, TenantSpec

    res = _load(ticket.resources) or {}
    unknown = set(res) - {"tenant", "systems", "k8s"}
    if unknown:
        raise TicketError(f"resources: unknown key(s) {', '.join(sorted(unknown))} (tenant, systems, k8s)")
    labels = {"department": ticket.department_code, "ticket_id": ticket.ref, "mlps_level": ticket.mlps_level,
              "data_class": ticket.data_class}
    tenant = None
    try:
        if res.get("tenant") is not None:
            entry = _labels_only(res["tenant"], labels, "tenant")
            if "ipv4_cidr" not in entry:
                raise TicketError("resources.tenant.ipv4_cidr: the tenant's IPv4 subnet is required")
            ipv4 = entry.pop("ipv4_cidr")
            base = tenant_spec(session, ticket.department_code, ticket.ref, ipv4, net, **entry)
            tenant = TenantSpec.model_validate(_raise(base.model_dump(), ticket.mlps_level, ticket.data_class))
        systems = []
        for i, raw in enumerate(res.get("systems") or []):
            entry = _labels_only(raw, labels, f"systems[{i}]")
            system_id = entry.pop("system_id", None) or ticket.system_id or f"NEW-{ticket.ref}"
            exposure = entry.get("internet_exposure")
            if exposure is not None:
                entry["internet_exposure"] = {**exposure, "ticket_id": ticket.ref,
                                              "approved": exposure_approver is not None,
                                              "approved_by": exposure_approver or "pending"}
            if "instances" not in entry and session.get(System, system_id) is not None:
                spec = system_spec(session, system_id, ticket.ref, **entry)
            else:
                spec = SystemSpec.model_validate({**labels, "system_id": system_id, **entry})
            systems.append(SystemSpec.model_validate(_raise(spec.model_dump(), ticket.mlps_level,
                                                            ticket.data_class)))
        k8s = []
        for i, raw in enumerate(res.get("k8s") or []):
            entry = _labels_only(raw, labels, f"k8s[{i}]")
            base = k8s_spec(session, ticket.department_code, ticket.ref, **entry)
            k8s.append(K8sSpec.model_validate(_raise(base.model_dump(), ticket.mlps_level, ticket.data_class)))
        return CloudRequest(tenant=tenant, systems=systems, k8s=k8s)
    except ValidationError as exc:
        raise TicketError(f"resources: {_validation_message(exc)}") from None
    except ValueError as exc:
        if isinstance(exc, TicketError):
            raise
        raise TicketError(f"resources: {exc}") from None


def usage(request: Any) -> dict[str, int]:
    """What the request takes from the department's quota; flavors are named ``…<N>c<M>g…`` (cores, GiB RAM)."""
    out = {"instances": 0, "cores": 0, "ram_gb": 0, "volume_gb": 0, "floating_ips": 0,
           "namespaces": len(request.k8s)}
    for system in request.systems:
        for inst in system.instances:
            match = FLAVOR.search(inst.flavor)
            if match is None:
                raise TicketError(f"flavor '{inst.flavor}' of {inst.name}: cores and RAM unknown "
                                  "(flavors are named like g.4c8g)")
            out["instances"] += inst.count
            out["cores"] += inst.count * int(match.group(1))
            out["ram_gb"] += inst.count * int(match.group(2))
        out["volume_gb"] += sum(v.size_gb for v in system.volumes)
        out["floating_ips"] += 1 if system.internet_exposure is not None else 0
    return out


def _department_usage(session: Session, ticket: Ticket) -> dict[str, int]:
    total: dict[str, int] = {}
    rows = session.scalars(select(Ticket.admission).where(
        Ticket.department_code == ticket.department_code, Ticket.id != ticket.id,
        Ticket.state.in_(HOLDING_STATES)))
    for text in rows:
        for key, value in ((_load(text) or {}).get("usage") or {}).items():
            total[key] = total.get(key, 0) + int(value)
    return total


def admission(session: Session, ticket: Ticket, net: NetSettings) -> dict[str, Any]:
    """Schema, quota and policy checks; the plan (plan mode) is part of the result."""
    from infra.cloud.plan import PlanError, plan

    checks: list[dict[str, Any]] = []
    result: dict[str, Any] = {"checks": checks, "plan": None, "usage": None}
    if ticket.type == "decommission":
        checks.append({"check": "schema", "passed": True, "messages": []})
        result["passed"] = True
        return result
    if ticket.type == "remediation":  # no resources, no plan: the schema and the system only
        ref = compliance_ref(ticket)
        checks.append({"check": "schema", "passed": bool(ref), "messages": [] if ref else ["no compliance reference"]})
        system = session.get(System, ticket.system_id) if ticket.system_id else None
        problems = ([] if system is not None and system.status != "decommissioned"
                    else [f"system {ticket.system_id} is not a live system of the register"])
        checks.append({"check": "system", "passed": not problems, "messages": problems})
        result["passed"] = all(c["passed"] for c in checks)
        return result
    try:
        request = build_request(session, ticket, net)
        request_usage = usage(request)
    except TicketError as exc:
        checks.append({"check": "schema", "passed": False, "messages": [str(exc)]})
        result["passed"] = False
        return result
    checks.append({"check": "schema", "passed": True, "messages": []})
    quota = ticket_policy().quota.of(ticket.department_code)
    held = _department_usage(session, ticket)
    over = [f"{key}: {held.get(key, 0)} held + {want} requested > quota {getattr(quota, key)} / 超出部门配额"
            for key, want in request_usage.items() if want and held.get(key, 0) + want > getattr(quota, key)]
    checks.append({"check": "quota", "passed": not over, "messages": over,
                   "held": held, "requested": request_usage, "quota": quota.model_dump()})
    result["usage"] = request_usage
    try:
        planned = plan(request)
    except (PlanError, ValueError) as exc:
        checks.append({"check": "policy", "passed": False, "messages": [f"plan failed: {exc}"]})
        result["passed"] = False
        return result
    violations = [v for r in planned["policy"]["results"] if r["enforcement"] == "mandatory"
                  for v in r["violations"]]
    checks.append({"check": "policy", "passed": bool(planned["admissible"]),
                   "messages": [f"{v['rule_id']}: {v['message']}" for v in violations]})
    result["plan"] = planned
    result["passed"] = all(c["passed"] for c in checks)
    return result


# --- provisioning and on-boarding ---------------------------------------------------------------------------------

def _claim(session: Session, ticket_id: int, kind: str) -> TicketJob | None:
    """queued → running for the ticket's job of this kind; None when someone else has it (or it ran)."""
    result = session.execute(update(TicketJob).where(TicketJob.ticket_id == ticket_id, TicketJob.kind == kind,
                                                     TicketJob.status == "queued").values(status="running")
                             .execution_options(synchronize_session=False))
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return None
    return session.scalar(select(TicketJob).where(TicketJob.ticket_id == ticket_id, TicketJob.kind == kind))


def destroy_plan(session: Session, ticket: Ticket) -> dict[str, Any]:
    """What reclaiming / decommissioning would destroy: the resources of the ticket's own plan, or for a 资源撤销
    ticket those of the system's latest delivered ticket (else its registered hosts). Nothing is destroyed."""
    source, plan_ = ticket, _load(ticket.plan)
    if ticket.type == "decommission":
        source = session.scalar(select(Ticket).where(
            Ticket.system_id == ticket.system_id, Ticket.type.not_in(("decommission", "remediation")),
            Ticket.plan.is_not(None),
            Ticket.state.in_((*ACTIVE_STATES, "reclaiming"))).order_by(Ticket.id.desc()))
        plan_ = _load(source.plan) if source is not None else None
    if plan_:
        resources = [{"type": r["type"], "name": r["name"]} for r in plan_.get("resources", []) if r.get("custom")]
        origin = f"plan of {source.ref}"  # type: ignore[union-attr]
    else:
        system = session.get(System, ticket.system_id) if ticket.system_id else None
        resources = [{"type": "host", "name": h.name} for h in (system.hosts if system else [])]
        origin = f"register hosts of {ticket.system_id}"
    return {"mode": "plan", "action": "destroy", "notice": DESTROY_NOTICE, "applied": False, "source": origin,
            "resources": resources, "count": len(resources)}


def lab_onboarder(rt: Runtime, info: dict[str, Any], soc: Soc | None = None) -> dict[str, Any]:
    """On-board the ticket's system with ``onboard.yml`` where a lab is up; otherwise say that nothing ran.

    The job's events go to the SOC (dataset yunshu.ansible) as from ``yunshu onboard``: into ``soc`` (the server's
    own) or else the configured SOC; a SOC failure is logged and never fails the on-boarding."""
    from infra.onboarding import onboard
    from infra.scoped_jobs import current_lab
    from portal.job_events import job_forwarder

    system = info.get("system_id")
    if not system:
        return {"status": "not_run", "reason": "the system is not in the register yet: nothing to on-board "
                                               "/ 系统尚未登记，未执行上线加固"}
    if current_lab(rt) is None:
        return {"status": "not_run", "reason": "no lab or automation connection on this control plane: onboard.yml "
                                               f"did not run; run `yunshu onboard {system}` once the hosts exist "
                                               "/ 无可用的自动化连接，未执行上线加固"}
    sink = job_forwarder(rt, soc)
    try:
        # as `yunshu onboard`: the hosts are pointed at this control plane's syslog receiver
        record = onboard(rt, [system], info["actor"], on_event=sink.on_event if sink else None,
                         on_created=sink.on_created if sink else None)
    finally:
        if sink is not None:
            sink.close()
    return {"status": "successful" if record["status"] == "successful" else "failed",
            "infra_job_id": record["id"], "job_status": record["status"], "rc": record.get("rc")}


def run_pipeline(rt: Runtime, ticket_id: int, onboarder: Onboarder | None = None,
                 now: datetime | None = None) -> str:
    """Run the queued provisioning (plan) and on-boarding of an approved ticket; returns the ticket's state.

    Safe to call from several places at once: each job is claimed by one caller only."""
    now = now or utcnow()
    net = rt.settings.net
    with rt.transaction() as session:
        ticket = session.get(Ticket, ticket_id)
        if ticket is None:
            raise TicketNotFound(f"no ticket {ticket_ref(ticket_id)}")
        kind = "resource_decommission" if ticket.type == "decommission" else "provision"
        job = _claim(session, ticket_id, kind) if ticket.type != "remediation" else None
        if job is not None:
            try:
                if kind == "provision":
                    request = build_request(session, ticket, net, exposure_approver=ticket.security_reviewer)
                    from infra.cloud.plan import plan

                    planned = plan(request)
                    outcome = {"mode": "plan", "notice": PLAN_NOTICE, "applied": False, "stack": planned["stack"],
                               "summary": planned["summary"], "admissible": planned["admissible"],
                               "policy_passed": planned["policy"]["passed"]}
                    if not planned["admissible"]:
                        raise TicketError("the provisioning plan breaks mandatory policy: " + "; ".join(
                            v["message"] for r in planned["policy"]["results"] for v in r["violations"]))
                    values: dict[str, Any] = {"plan": _dump(planned)}
                else:
                    outcome = destroy_plan(session, ticket)
                    values = {}
            except Exception as exc:  # recorded on the job and the ticket; the ticket stays in provisioning
                job.status, job.error, job.finished_at = "failed", str(exc)[:4000], now
                _record(session, rt.audit, ticket, "system:provisioning", "provision_failed", ticket.state,
                        ticket.state, note=str(exc)[:2000], now=now, payload={"job": job.id})
                return ticket.state
            job.status, job.result, job.finished_at = "planned", _dump(outcome), now
            if ticket.type == "decommission":
                _move(session, rt.audit, ticket, ("provisioning",), "delivered", "system:provisioning", "deliver",
                      now=now, delivered_at=now, note="destroy plan recorded; nothing applied (plan mode)",
                      payload={"job": job.id})
                return ticket.state
            _move(session, rt.audit, ticket, ("provisioning",), "onboarding", "system:provisioning", "provision",
                  now=now, note=PLAN_NOTICE, payload={"job": job.id, "resources": outcome["summary"]["resources"]},
                  **values)
            session.add(TicketJob(ticket_id=ticket.id, kind="onboard", mode="ansible", status="queued",
                                  requested_by="system:provisioning", created_at=now))
        info = {"ticket": ticket.ref, "system_id": ticket.system_id,
                "actor": ticket.resource_approver or ticket.security_reviewer or "system"}
    with rt.transaction() as session:
        job = _claim(session, ticket_id, "onboard")
    if job is None:
        with rt.sessions() as session:
            return session.get(Ticket, ticket_id).state  # type: ignore[union-attr]
    try:
        outcome = (onboarder or lab_onboarder)(rt, info)
    except Exception as exc:  # an on-boarding that raised failed; say so
        outcome = {"status": "failed", "reason": f"{type(exc).__name__}: {exc}"}
    status = outcome.get("status")
    if status not in ("successful", "failed", "not_run"):
        outcome = {"status": "failed", "reason": f"the on-boarding step answered {outcome!r}"}
        status = "failed"
    done = utcnow()
    with rt.transaction() as session:
        ticket = session.get(Ticket, ticket_id)
        job = session.get(TicketJob, job.id)
        assert ticket is not None and job is not None
        job.status, job.result, job.finished_at = status, _dump(outcome), done
        job.infra_job_id = outcome.get("infra_job_id")
        if status == "failed":
            _record(session, rt.audit, ticket, "system:onboarding", "onboard_failed", ticket.state, ticket.state,
                    note=str(outcome.get("reason") or outcome)[:2000], now=done, payload={"job": job.id})
            return ticket.state
        note = ("on-boarding successful" if status == "successful"
                else f"on-boarding did not run: {outcome.get('reason')}")
        if ticket.type == "remediation":  # done only when an evaluation confirms it (complete_remediation)
            _record(session, rt.audit, ticket, "system:onboarding", "remediation_onboard", ticket.state,
                    ticket.state, note=note, now=done, payload={"job": job.id, "onboarding": status})
            return ticket.state
        _move(session, rt.audit, ticket, ("onboarding",), "delivered", "system:onboarding", "deliver", now=done,
              note=f"{PLAN_NOTICE}; {note}", payload={"job": job.id, "onboarding": status}, delivered_at=done)
        return ticket.state


def retry_onboarding(session: Session, audit: AuditChain, actor: Actor, ticket: Ticket) -> None:
    """Queue the on-boarding again after a failure (platform engineers); run it with :func:`run_pipeline`."""
    actor.require("tickets.operate")
    job = session.scalar(select(TicketJob).where(TicketJob.ticket_id == ticket.id, TicketJob.kind == "onboard"))
    if ticket.state != "onboarding" or job is None or job.status != "failed":
        raise TicketConflict(f"ticket {ticket.ref} has no failed on-boarding to retry")
    job.status, job.error, job.finished_at = "queued", None, None
    _record(session, audit, ticket, actor.name, "onboard_retry", ticket.state, ticket.state)


# --- maintenance: timeouts, expiry, reclamation -------------------------------------------------------------------

def maintain(rt: Runtime, now: datetime | None = None) -> dict[str, list[str]]:
    """Escalate overdue approvals, send expiry reminders, start reclaiming expired tickets and reclaim those past
    their grace period (a ``resource_decommission`` destroy plan, then closed). Each step audited; safe to run
    concurrently (conditional updates)."""
    with rt.transaction() as session:
        return maintain_in(session, rt.audit, now)


def maintain_in(session: Session, audit: AuditChain, now: datetime | None = None) -> dict[str, list[str]]:
    """:func:`maintain` inside the caller's transaction (an API request's session)."""
    now = now or utcnow()
    rules = ticket_policy().expiry
    done: dict[str, list[str]] = {"escalated": [], "reminded": [], "reclaiming": [], "closed": []}
    for ticket in session.scalars(select(Ticket).where(Ticket.state.in_(APPROVAL_STATES),
                                                       Ticket.escalated_at.is_(None),
                                                       Ticket.stage_deadline < now)).all():
        hit = session.execute(update(Ticket).where(Ticket.id == ticket.id, Ticket.escalated_at.is_(None),
                                                   Ticket.state == ticket.state)
                              .values(escalated_at=now, version=Ticket.version + 1)
                              .execution_options(synchronize_session=False))
        if hit.rowcount == 1:  # type: ignore[attr-defined]
            overdue = now - (aware(ticket.stage_deadline) or now)
            _record(session, audit, ticket, "system:maintenance", "escalate", ticket.state, ticket.state,
                    note=f"approval overdue by {overdue.total_seconds() / 3600:.1f} h / 审批超时已升级",
                    payload={"deadline": aware(ticket.stage_deadline).isoformat()}, now=now)  # type: ignore[union-attr]
            done["escalated"].append(ticket.ref)
    remind_before = now + timedelta(days=rules.reminder_days)
    for ticket in session.scalars(select(Ticket).where(Ticket.state.in_(ACTIVE_STATES),
                                                       Ticket.reminded_at.is_(None),
                                                       Ticket.expires_at <= remind_before,
                                                       Ticket.expires_at > now)).all():
        hit = session.execute(update(Ticket).where(Ticket.id == ticket.id, Ticket.reminded_at.is_(None))
                              .values(reminded_at=now).execution_options(synchronize_session=False))
        if hit.rowcount == 1:  # type: ignore[attr-defined]
            _record(session, audit, ticket, "system:maintenance", "expiry_reminder", ticket.state, ticket.state,
                    note=f"expires {aware(ticket.expires_at).date()}: renew or it is reclaimed / 即将到期，请续期",  # type: ignore[union-attr]
                    now=now)
            done["reminded"].append(ticket.ref)
    for ticket in session.scalars(select(Ticket).where(Ticket.state.in_(ACTIVE_STATES),
                                                       Ticket.expires_at <= now)).all():
        try:
            _move(session, audit, ticket, ACTIVE_STATES, "reclaiming", "system:maintenance", "expire", now=now,
                  grace_until=aware(ticket.expires_at) + timedelta(days=rules.grace_days),  # type: ignore[operator]
                  note=f"expired; reclaimed after {rules.grace_days} days unless renewed / 已到期，宽限期后回收")
        except TicketConflict:
            continue  # renewed or moved by a concurrent run
        done["reclaiming"].append(ticket.ref)
    for ticket in session.scalars(select(Ticket).where(Ticket.state == "reclaiming",
                                                       Ticket.grace_until <= now)).all():
        try:
            with session.begin_nested():
                session.add(TicketJob(ticket_id=ticket.id, kind="resource_decommission", mode="plan",
                                      status="planned", requested_by="system:maintenance",
                                      result=_dump(destroy_plan(session, ticket)), created_at=now,
                                      finished_at=now))
                session.flush()
                _move(session, audit, ticket, ("reclaiming",), "closed", "system:maintenance", "reclaim",
                      now=now, closed_at=now, note=DESTROY_NOTICE)
        except (IntegrityError, TicketConflict):
            continue  # reclaimed or renewed by a concurrent caller
        done["closed"].append(ticket.ref)
    return done


# --- reading --------------------------------------------------------------------------------------------------------

def parse_ref(value: str | int) -> int:
    """A ticket id from ``TKT-000012`` or ``12``."""
    text = str(value).strip().upper()
    match = re.fullmatch(r"(?:TKT-)?0*(\d{1,12})", text)
    if match is None:
        raise TicketNotFound(f"'{value}' is not a ticket reference (TKT-000012 or 12)")
    return int(match.group(1))


def visible_ticket(session: Session, actor: Actor, ref: str | int) -> Ticket:
    """The ticket if the actor may see it (own department for department users); else TicketNotFound."""
    actor.require("tickets.read")
    ticket = session.get(Ticket, parse_ref(ref))
    if ticket is None or not actor.sees(ticket.department_code):
        raise TicketNotFound(f"no ticket {ref} / 工单不存在")
    return ticket


def list_tickets(session: Session, actor: Actor, *, state: str | None = None, type_: str | None = None,
                 limit: int = 100, offset: int = 0) -> tuple[list[Ticket], int]:
    actor.require("tickets.read")
    query = select(Ticket)
    if actor.departments is not None:
        query = query.where(Ticket.department_code.in_(actor.departments))
    if state == "open":
        query = query.where(Ticket.state.not_in(FINAL_STATES))
    elif state:
        query = query.where(Ticket.state == state)
    if type_:
        query = query.where(Ticket.type == ticket_policy().type_code(type_))
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(Ticket.id.desc()).limit(limit).offset(offset)).all()
    return list(rows), total


def _iso(value: datetime | None) -> str | None:
    value = aware(value)
    return value.isoformat() if value else None


def ticket_dict(session: Session, ticket: Ticket, *, detail: bool = False) -> dict[str, Any]:
    """A ticket as JSON-ready data; ``detail`` adds resources, admission, plan, jobs and history."""
    rule = ticket_policy().types[ticket.type]
    out: dict[str, Any] = {
        "id": ticket.ref, "number": ticket.id, "type": ticket.type, "type_label": {"zh": rule.zh, "en": rule.en},
        "state": ticket.state, "title": ticket.title, "department": ticket.department_code,
        "system": ticket.system_id, "new_system": _load(ticket.new_system), "mlps_level": ticket.mlps_level,
        "data_class": ticket.data_class, "expires_at": _iso(ticket.expires_at),
        "data_catalog_id": ticket.data_catalog_id, "crypto_plan": ticket.crypto_plan_ref,
        "requester": ticket.requester, "security_reviewer": ticket.security_reviewer,
        "resource_approver": ticket.resource_approver, "stage_deadline": _iso(ticket.stage_deadline),
        "escalated_at": _iso(ticket.escalated_at), "reminded_at": _iso(ticket.reminded_at),
        "grace_until": _iso(ticket.grace_until), "renewals": ticket.renewals,
        "created_at": _iso(ticket.created_at), "submitted_at": _iso(ticket.submitted_at),
        "delivered_at": _iso(ticket.delivered_at), "closed_at": _iso(ticket.closed_at),
        "compliance": compliance_ref(ticket),
    }
    if detail:
        jobs = session.scalars(select(TicketJob).where(TicketJob.ticket_id == ticket.id).order_by(TicketJob.id))
        history = session.scalars(select(TicketHistory).where(TicketHistory.ticket_id == ticket.id)
                                  .order_by(TicketHistory.id))
        out.update({
            "justification": ticket.justification, "grading": _load(ticket.grading),
            "resources": {} if ticket.type == "remediation" else _load(ticket.resources),
            "admission": _load(ticket.admission), "plan": _load(ticket.plan),
            "jobs": [{"id": j.id, "kind": j.kind, "mode": j.mode, "status": j.status, "requested_by": j.requested_by,
                      "result": _load(j.result), "error": j.error, "infra_job_id": j.infra_job_id,
                      "created_at": _iso(j.created_at), "finished_at": _iso(j.finished_at)} for j in jobs],
            "history": [{"at": _iso(h.at), "actor": h.actor, "action": h.action, "from": h.from_state,
                         "to": h.to_state, "note": h.note} for h in history],
        })
    return out


IDLE_DAYS_MAX = 3650  # the largest idle threshold the API and console accept


def idle_systems(session: Session, days: int | None = None, now: datetime | None = None,
                 departments: frozenset[str] | None = None) -> list[dict[str, Any]]:
    """僵尸系统: systems (not decommissioned) with no register activity for ``days`` (or none recorded)."""
    days = days or ticket_policy().idle_days
    now = now or utcnow()
    cutoff = now - timedelta(days=days)
    query = select(System).where(System.status != "decommissioned",
                                 (System.last_activity.is_(None)) | (System.last_activity < cutoff))
    if departments is not None:
        query = query.where(System.department_code.in_(departments))
    out = []
    for s in session.scalars(query.order_by(System.last_activity.is_not(None), System.last_activity, System.id)):
        last = aware(s.last_activity)
        out.append({"system": s.id, "name": s.name, "department": s.department_code, "status": s.status,
                    "hosting": s.hosting, "last_activity": last.isoformat() if last else None,
                    "idle_days": (now - last).days if last else None})
    return out
