"""Infrastructure collector: the system's cloud plan (Pulumi plan mode, nothing applied) read as evidence —
instances and their exposure, volume encryption, security-group rules, default deny, tenant isolation and dual
stack — from the plan's resources and its policy results.

The plan is the newest one stored on a ticket for the system; failing that, one is made from the register
(``request_for_system``) for systems hosted on a cloud. Systems elsewhere get no infrastructure section (待人工).
"""

from __future__ import annotations

import ipaddress
import json
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.runtime import Runtime
from infra.cloud.from_register import request_for_system
from infra.cloud.plan import PlanError, plan
from inventory.models import Prefix
from policies.mlps.evidence import CLOUD_HOSTING, InfraFacts, Instance, Provenance, SecurityRule, Volume
from portal.compliance.digest import stamp
from portal.compliance.system_info import SystemInfo
from portal.tickets.models import Ticket

EXPOSURE_RULE = "YS-CLOUD-006"
DUAL_STACK_RULE = "YS-CLOUD-003"
ENCRYPTION_RULE = "YS-CLOUD-002"


def _kind(resource: dict[str, Any]) -> str:
    return resource["type"].rsplit(":", 1)[-1]


def _tags(props: dict[str, Any]) -> dict[str, str]:
    tags = props.get("tags") or []
    return dict(t.split("=", 1) for t in tags if isinstance(t, str) and "=" in t)


def _v4_cidr(session: Session, system: SystemInfo) -> str | None:
    """The smallest registered IPv4 prefix holding one of the system's hosts."""
    addresses = [ipaddress.IPv4Address(h.ipv4) for h in system.hosts if h.ipv4]
    best: ipaddress.IPv4Network | None = None
    for prefix in session.scalars(select(Prefix).where(Prefix.family == 4)):
        net = ipaddress.IPv4Network(prefix.cidr)
        if any(a in net for a in addresses) and (best is None or net.prefixlen > best.prefixlen):
            best = net
    return str(best) if best else None


def system_plan(rt: Runtime, session: Session, system: SystemInfo) -> tuple[dict[str, Any] | None, str]:
    """The plan to read and where it came from; ``(None, reason)`` when there is none."""
    ticket = session.scalars(select(Ticket).where(Ticket.system_id == system.id, Ticket.plan.is_not(None))
                             .order_by(Ticket.id.desc()).limit(1)).first()
    if ticket is not None and ticket.plan:
        return json.loads(ticket.plan), f"plan of ticket {ticket.id}"
    if system.hosting not in CLOUD_HOSTING:
        return None, f"hosting '{system.hosting}' has no cloud plan"
    cidr = _v4_cidr(session, system)
    if cidr is None:
        return None, "no registered IPv4 prefix holds the system's hosts"
    nested = session.begin_nested()  # IPAM allocations made while planning are not kept
    try:
        request = request_for_system(session, system.id, f"AUDIT-{system.id}", cidr, rt.settings.net)
        return plan(request), "plan from the register (plan mode, nothing applied)"
    except (ValueError, PlanError) as exc:
        return None, f"no plan: {exc}"
    finally:
        nested.rollback()


def infra_from_plan(planned: dict[str, Any], system_id: str, department: str) -> tuple[InfraFacts, dict[str, Any]]:
    """Plan (``infra.cloud.plan.plan`` output) → infrastructure facts, plus the dual-stack and policy summary."""
    resources = planned.get("resources") or []
    policy = {r["rule_id"]: r for r in (planned.get("policy") or {}).get("results", [])}
    encrypted_types = {r["name"] for r in resources if _kind(r) == "VolumeTypeV3"
                       and str((r["properties"].get("extraSpecs") or {}).get("yunshu:encrypted")) == "true"}
    encrypted_names = {r["properties"].get("name") for r in resources if r["name"] in encrypted_types}
    floating = " ".join(r["name"] for r in resources if "floatingip" in _kind(r).lower())
    exposure_ok = policy.get(EXPOSURE_RULE, {}).get("passed", False)
    instances, volumes, rules = [], [], []
    networks, subnets_v6, groups_deny = [], 0, []
    for r in resources:
        props, kind = r["properties"], _kind(r)
        mine = _tags(props).get("system_id") in (system_id, "shared") or \
            (props.get("metadata") or {}).get("system_id") == system_id
        if kind == "Instance" and mine:
            fip = r["name"] in floating or bool(props.get("floatingIp"))
            instances.append(Instance(name=r["name"], role=(props.get("metadata") or {}).get("role"),
                                      floating_ip=fip, exposure_approved=fip and exposure_ok))
        elif kind == "Volume" and mine:
            volumes.append(Volume(name=props.get("name") or r["name"],
                                  encrypted=props.get("volumeType") in encrypted_names))
        elif kind == "SecGroupRule":
            rules.append(SecurityRule(group=props.get("securityGroupId", "?"),
                                      direction=props.get("direction", "ingress"), protocol=props.get("protocol"),
                                      port_min=props.get("portRangeMin"), port_max=props.get("portRangeMax"),
                                      remote=props.get("remoteIpPrefix")))
        elif kind == "SecGroup":
            groups_deny.append(bool(props.get("deleteDefaultRules")))
        elif kind == "Network":
            networks.append(_tags(props).get("department"))
        elif kind == "Subnet" and props.get("ipVersion") == 6:
            subnets_v6 += 1
    facts = InfraFacts(volumes=volumes, instances=instances, security_rules=rules,
                       default_deny=any(groups_deny) if groups_deny else None,
                       isolated_tenant_network=all(n == department for n in networks) if networks else None)
    summary = {
        "stack": planned.get("stack"), "mode": planned.get("mode"), "applied": planned.get("applied"),
        "dual_stack": subnets_v6 > 0 and policy.get(DUAL_STACK_RULE, {}).get("passed", True),
        "ipv6_subnets": subnets_v6,
        "policy": {rid: {"passed": r.get("passed"), "violations": len(r.get("violations") or [])}
                   for rid, r in sorted(policy.items())},
        "admissible": planned.get("admissible"),
    }
    return facts, summary


def collect_infra(rt: Runtime, system: SystemInfo,
                  now: datetime) -> tuple[InfraFacts | None, dict[str, Provenance], dict[str, Any]]:
    """The infrastructure section (None when the system has no plan) with provenance over the plan read."""
    with rt.sessions() as session:
        planned, origin = system_plan(rt, session, system)
        session.rollback()
    if planned is None:
        return None, {}, {"source": origin}
    facts, summary = infra_from_plan(planned, system.id, system.department_code)
    summary["source"] = origin
    return facts, {"infra": stamp(f"infra.cloud.plan: {origin}", now, planned)}, summary
