"""Host collector: each registered host's newest ``evidence.yml`` facts (infra.host_evidence), mapped to the 等保
host-check vocabulary. Provenance per host: the stored evidence's SHA-256, the job that read it and when."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from infra.evidence_facts import host_facts_for_checks
from infra.host_evidence import latest_evidence
from policies.mlps.evidence import HostFacts, Provenance
from portal.compliance.digest import stamp
from portal.compliance.system_info import SystemInfo


def collect_hosts(session: Session, system: SystemInfo,
                  now: datetime) -> tuple[list[HostFacts], dict[str, Provenance], dict[str, Any]]:
    """The hosts' facts (hosts never collected are left out: the checks name them as lacking facts),
    provenance items ``hosts:<name>`` and a summary naming the hosts without evidence."""
    facts: list[HostFacts] = []
    provenance: dict[str, Provenance] = {}
    missing: list[str] = []
    stored: dict[str, Any] = {}
    for host in system.hosts:
        found = latest_evidence(session, host.name)
        if found is None:
            missing.append(host.name)
            continue
        facts.append(HostFacts.model_validate(host_facts_for_checks(host.name, found["facts"])))
        collected = datetime.fromisoformat(found["collected_at"])
        provenance[f"hosts:{host.name}"] = Provenance(
            source=f"{found['source']} job {found['job_id']}", collected_at=collected, digest=found["sha256"])
        stored[host.name] = {"sha256": found["sha256"], "job_id": found["job_id"],
                             "collected_at": found["collected_at"]}
    summary = {"hosts": stored, "without_evidence": missing}
    provenance["hosts"] = stamp("infra.host_evidence (latest evidence.yml per host)", now, summary)
    return facts, provenance, summary
