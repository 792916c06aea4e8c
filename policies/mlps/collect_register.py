"""Evidence collector for the register (台账): a system, its hosts and the networks its addresses sit in.

Returns the ``register`` section of :class:`~policies.mlps.evidence.Evidence` with its provenance (source, time,
SHA-256 of the records read). Filing number, last assessment and the high-risk scope flags are not in the register
yet; pass them in when known (they stay empty otherwise, and the checks say so).
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from datetime import UTC, date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from inventory.models import Network, Prefix, System
from inventory.register import host_record, system_record
from inventory.vocabulary import vocabulary
from policies.mlps.evidence import Evidence, Provenance, RegisteredHost, RegisteredNetwork, RegisterFacts


def _networks(session: Session, system: System) -> list[RegisteredNetwork]:
    """The department's networks plus any network holding one of the system's addresses."""
    addresses = [ipaddress.ip_address(a) for h in system.hosts for a in (h.ipv4, h.ipv6) if a]
    chosen: dict[str, list[str]] = {}
    departments: dict[str, str | None] = {}
    for prefix, network in session.execute(select(Prefix, Network).join(Network)).all():
        net = ipaddress.ip_network(prefix.cidr)
        mine = network.department_code == system.department_code
        holds = any(a.version == net.version and a in net for a in addresses)
        if mine or holds:
            chosen.setdefault(network.code, []).append(prefix.cidr)
            departments[network.code] = network.department_code
    return [
        RegisteredNetwork(code=code, prefixes=sorted(p), department=departments[code])
        for code, p in sorted(chosen.items())
    ]


def register_facts(
    session: Session,
    system_id: str,
    *,
    filing_no: str | None = None,
    last_assessment: date | None = None,
    business_continuity_high: bool = False,
    critical_industry: bool = False,
    cloud_role: str | None = None,
    now: datetime | None = None,
) -> tuple[RegisterFacts, Provenance]:
    """Read one system from the register; raise LookupError naming an unknown id."""
    system = session.get(System, system_id)
    if system is None:
        raise LookupError(f"system {system_id} is not in the register")
    vocab = vocabulary()
    records = {"system": system_record(system), "hosts": [host_record(h) for h in system.hosts]}
    facts = RegisterFacts(
        system_id=system.id,
        name=system.name,
        department=system.department_code,
        owner=system.owner,
        mlps_level=system.mlps_level,
        grading_info_level=vocab.grade(system.grading_info_object, system.grading_info_degree),
        grading_service_level=vocab.grade(system.grading_service_object, system.grading_service_degree),
        data_class=system.data_class,
        public_data_level=system.public_data_level,
        hosting=system.hosting,
        network_stack=system.network_stack,
        status=system.status,
        cloud_role=cloud_role,  # type: ignore[arg-type]
        business_continuity_high=business_continuity_high,
        critical_industry=critical_industry,
        filing_no=filing_no,
        last_assessment=last_assessment,
        hosts=[RegisteredHost(name=h.name, role=h.role, ipv4=h.ipv4, ipv6=h.ipv6) for h in system.hosts],
        networks=_networks(session, system),
    )
    digest = hashlib.sha256(json.dumps(records, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
    return facts, Provenance(source="register", collected_at=now or datetime.now(UTC), digest=digest)


def evidence_from_register(session: Session, system_id: str, **kwargs: object) -> Evidence:
    """Evidence with only the register section filled (the other sources are 待人工 until collected)."""
    facts, provenance = register_facts(session, system_id, **kwargs)  # type: ignore[arg-type]
    return Evidence(system=facts, provenance={"register": provenance})
