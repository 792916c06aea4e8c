"""Every 等保 collector against the sample city: hosts (stored evidence.yml facts), SOC health, drills, the cloud
plan, TLS probes on loopback servers, and the collect_evidence entry point."""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from core.runtime import Runtime
from infra.host_evidence import HostEvidenceRecord, canonical
from infra.jobs_models import Job
from inventory.ipam import IpamAllocation
from policies.mlps.checks import REGISTRY, CheckContext
from policies.mlps.evaluate import evaluate
from policies.mlps.evidence import Evidence
from policies.mlps.results import Result
from portal.compliance.collect import UnsupportedLevel, collect, collect_evidence
from portal.compliance.collect_crypto import Target, collect_crypto, probe, sm_support
from portal.compliance.collect_drills import collect_drills
from portal.compliance.collect_hosts import collect_hosts
from portal.compliance.collect_infra import collect_infra, infra_from_plan, system_plan
from portal.compliance.collect_soc import collect_soc
from portal.compliance.system_info import system_info
from soc.alerts.models import Alert
from soc.drills.models import Drill, DrillFinding
from soc.service import open_soc
from tests.compliance.helpers import free_port, host_evidence, web_server
from tests.conftest import sample_city

SYSTEM = "SYS-SJJ-002"  # level 3, gov_cloud, hosts app01 / db01 / web01
HOSTS = ["sjj-lwsj-app01", "sjj-lwsj-db01", "sjj-lwsj-web01"]
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    with sample_city(tmp_path_factory, "mlps-collect") as rt:
        yield rt


def _check(ev: Evidence, cid: str, level: int = 3) -> Result:
    return REGISTRY[cid].fn(ev, CheckContext(level=level, as_of=NOW)).result


def _store_evidence(rt: Runtime, host: str, facts: dict) -> tuple[int, str]:
    import hashlib

    with rt.transaction() as session:
        job = Job(kind="evidence", playbook="evidence.yml", scope="{}", check_mode=True, requested_by="t",
                  status="successful", timeout_s=60)
        session.add(job)
        session.flush()
        text = canonical(facts)
        digest = hashlib.sha256(text.encode()).hexdigest()
        session.add(HostEvidenceRecord(host=host, job_id=job.id, collected_at=NOW, facts=text, sha256=digest))
        return job.id, digest


def test_hosts_collector_reads_the_newest_evidence_with_its_digest(city: Runtime) -> None:
    _store_evidence(city, HOSTS[0], host_evidence(HOSTS[0]))
    job, digest = _store_evidence(city, HOSTS[0], host_evidence(
        HOSTS[0], faillock={"enforced": True, "deny": 5, "unlock_time": 600}, session={"tmout": 600}))
    with city.sessions() as session:
        facts, provenance, summary = collect_hosts(session, system_info(session, SYSTEM), NOW)
    assert [h.name for h in facts] == [HOSTS[0]]
    assert facts[0].faillock is not None and facts[0].faillock.enabled and facts[0].tmout == 600  # the newest
    item = provenance[f"hosts:{HOSTS[0]}"]
    assert item.digest == digest and item.source == f"playbooks/evidence.yml job {job}"
    assert summary["without_evidence"] == HOSTS[1:]
    assert provenance["hosts"].digest and len(provenance["hosts"].digest) == 64
    ev = Evidence.model_validate({"register": {"system_id": SYSTEM, "mlps_level": 3,
                                               "hosts": [{"name": h, "role": "app"} for h in HOSTS]},
                                  "hosts": [f.model_dump() for f in facts]})
    assert _check(ev, "host.login_failure_lockout") is not Result.COMPLIANT  # two hosts lack facts


def _event(doc_id: str, host: str, at: datetime, **extra: object) -> tuple[str, dict]:
    return doc_id, {"@timestamp": at.isoformat().replace("+00:00", "Z"), "message": "m", "host": {"name": host},
                    "gov": {"system": {"id": SYSTEM}, "department": "SJJ"}, **extra}


def test_soc_collector_reports_sources_retention_and_sla(city: Runtime) -> None:
    now = datetime.now(UTC)
    soc = open_soc(city)
    try:
        soc.store.write([_event("e1", HOSTS[0], now - timedelta(hours=1)),
                         _event("e2", HOSTS[1], now - timedelta(hours=2), event={"category": "network"}),
                         _event("e3", HOSTS[2], now - timedelta(days=2)),  # older than 24 h
                         _event("e4", "somebody-else", now - timedelta(hours=1))])
    finally:
        soc.close()
    with city.transaction() as session:
        base = {"rule_id": "r", "rule_title": "t", "rule_level": "high", "group_key": "g", "severity": "high",
                "score": 50, "system_id": SYSTEM, "first_seen": now, "last_seen": now}
        session.add_all([
            Alert(**base, status="new", acknowledge_due=now - timedelta(hours=1), resolve_due=now + timedelta(1)),
            Alert(**base, status="resolved", acknowledge_due=now - timedelta(hours=1),
                  resolve_due=now - timedelta(minutes=5), resolved_at=now - timedelta(minutes=30)),
            Alert(**base, status="new", acknowledge_due=now + timedelta(hours=1), resolve_due=now + timedelta(1)),
        ])
    with city.sessions() as session:
        info = system_info(session, SYSTEM)
    health, provenance, material = collect_soc(city, info, now)
    assert health.hosts_reporting_24h == HOSTS[:2]  # web01 is silent, the foreign host is not the system's
    assert info.data_class == "general" and health.retention_days == 180  # the setting for general data
    assert health.network_sources_reporting and health.network_rules_enabled > 0
    assert (health.alerts_total, health.alerts_over_sla) == (3, 1)
    assert material["events_24h_by_host"] == {HOSTS[0]: 1, HOSTS[1]: 1, "somebody-else": 1}  # as read
    assert len(provenance["soc"].digest or "") == 64
    ev = Evidence.model_validate({"register": {"system_id": SYSTEM, "mlps_level": 3,
                                               "hosts": [{"name": h, "role": "app"} for h in HOSTS]},
                                  "soc": health.model_dump()})
    assert _check(ev, "soc.sources_reporting") is Result.PARTIAL
    assert _check(ev, "soc.retention_180d") is Result.COMPLIANT
    assert _check(ev, "soc.alert_sla") is not Result.COMPLIANT


def test_drills_collector_counts_held_drills_and_open_findings(city: Runtime) -> None:
    held = NOW - timedelta(days=40)
    with city.transaction() as session:
        done = Drill(title="应急演练", type="emergency", scope=[SYSTEM], status="completed", planned_start=held,
                     actual_start=held, actual_end=held + timedelta(hours=2), created_by="analyst")
        done.findings = [DrillFinding(title="f1", severity="high", remediation="fix", status="closed"),
                         DrillFinding(title="f2", severity="low", remediation="fix", status="open")]
        planned = Drill(title="计划中", type="emergency", scope=[SYSTEM], status="planned", planned_start=NOW,
                        created_by="analyst")
        other = Drill(title="他系统", type="emergency", scope=["SYS-XFJ-001"], status="completed",
                      planned_start=held, actual_start=held, created_by="analyst")
        session.add_all([done, planned, other])
    with city.sessions() as session:
        records, provenance, material = collect_drills(session, system_info(session, SYSTEM), NOW)
    assert [(d.kind, d.held_on, d.findings_total, d.findings_open) for d in records.drills] == [
        ("emergency", held.date(), 2, 1)]
    assert [d["title"] for d in material["drills"]] == ["应急演练"]
    ev = Evidence.model_validate({"register": {"system_id": SYSTEM, "mlps_level": 3},
                                  "drills": records.model_dump()})
    assert _check(ev, "drills.annual_emergency_drill") is Result.COMPLIANT
    assert _check(ev, "drills.findings_closed") is not Result.COMPLIANT
    assert provenance["drills"].source == "soc drill records"


def test_infra_collector_reads_the_plan_without_keeping_ipam_changes(city: Runtime) -> None:
    with city.sessions() as session:
        info = system_info(session, SYSTEM)
        allocations = session.scalar(select(func.count()).select_from(IpamAllocation))
    facts, provenance, summary = collect_infra(city, info, NOW)
    assert facts is not None
    assert sorted(i.role or "" for i in facts.instances) == ["app", "db", "web"]
    assert facts.volumes and all(v.encrypted for v in facts.volumes)
    assert not any(i.floating_ip for i in facts.instances) and facts.default_deny is True
    assert facts.isolated_tenant_network is True
    assert summary["dual_stack"] is True and summary["policy"]["YS-CLOUD-006"]["passed"] is True
    assert summary["source"].startswith("plan from the register") and provenance["infra"].digest
    with city.sessions() as session:
        assert session.scalar(select(func.count()).select_from(IpamAllocation)) == allocations
        local = system_info(session, "SYS-DAG-001")  # local IDC: no cloud plan
    none, none_prov, why = collect_infra(city, local, NOW)
    assert none is None and none_prov == {} and "local_idc" in why["source"]


def test_infra_from_a_plan_with_exposure_and_plain_volumes(city: Runtime) -> None:
    with city.sessions() as session:
        planned, _ = system_plan(city, session, system_info(session, SYSTEM))
        session.rollback()
    assert planned is not None
    doctored = json.loads(json.dumps(planned))
    for r in doctored["resources"]:
        if r["type"].endswith(":VolumeTypeV3"):
            r["properties"]["extraSpecs"] = {}
    web = next(r for r in doctored["resources"] if r["type"].endswith(":Instance") and "web01" in r["name"])
    doctored["resources"].append({"type": "openstack:networking/floatingIpAssociate:FloatingIpAssociate",
                                  "name": f"{web['name']}-fip", "properties": {}})
    for result in doctored["policy"]["results"]:
        if result["rule_id"] == "YS-CLOUD-006":
            result["passed"] = False
    facts, summary = infra_from_plan(doctored, SYSTEM, "SJJ")
    assert [i.name for i in facts.instances if i.floating_ip] == [web["name"]]
    assert not any(i.exposure_approved for i in facts.instances)
    assert facts.volumes and not any(v.encrypted for v in facts.volumes)
    ev = Evidence.model_validate({"register": {"system_id": SYSTEM, "mlps_level": 3}, "infra": facts.model_dump()})
    assert _check(ev, "infra.exposure_approved") is Result.NON_COMPLIANT
    assert _check(ev, "infra.volume_encryption") is Result.NON_COMPLIANT
    assert summary["policy"]["YS-CLOUD-006"]["passed"] is False


def test_tls_probe_of_loopback_servers(city: Runtime, tmp_path: Path) -> None:
    with web_server(tmp_path / "keys", tls=True, minimum=ssl.TLSVersion.TLSv1_2) as tls_port, \
            web_server(tmp_path, tls=False) as http_port:
        good = probe(Target("good", "127.0.0.1", tls_port, free_port()), timeout=2)
        plain = probe(Target("plain", "127.0.0.1", free_port(), http_port), timeout=2)
        with city.sessions() as session:
            info = system_info(session, SYSTEM)
        facts, provenance, material = collect_crypto(city, info, NOW, targets=[
            Target("good", "127.0.0.1", tls_port, free_port()), Target("plain", "127.0.0.1", free_port(), http_port),
            Target("gone", "127.0.0.1", free_port(), free_port())], timeout=2)
    assert good["tls_reachable"] and "TLSv1.2" in good["protocols"] and "TLSv1" not in good["protocols"]
    assert not good["plaintext_http"] and good["protocols"]["TLSv1.2"].startswith("ECDHE")
    assert not plain["tls_reachable"] and plain["plaintext_http"] and plain["protocols"] == {}
    assert [(e.name, e.plaintext) for e in facts.endpoints] == [("good", False), ("plain", True)]  # "gone" left out
    assert [p["name"] for p in material["probes"]] == ["good", "plain", "gone"]
    assert material["sm_available"] == sm_support() == {"SM3": True, "SM4": True}
    assert facts.scheme_on_file is False and len(provenance["crypto"].digest or "") == 64
    ev = Evidence.model_validate({"register": {"system_id": SYSTEM, "mlps_level": 3}, "crypto": facts.model_dump()})
    assert _check(ev, "crypto.tls_in_transit") is Result.PARTIAL  # one of two endpoints serves clear text
    only_good = Evidence.model_validate({"register": {"system_id": SYSTEM, "mlps_level": 3},
                                         "crypto": {"endpoints": [facts.endpoints[0].model_dump()]}})
    assert _check(only_good, "crypto.tls_in_transit") is Result.COMPLIANT


def test_collect_evidence_fills_every_section_with_provenance(city: Runtime) -> None:
    collected = collect(city, SYSTEM, probe_targets=[])
    ev = collected.evidence
    assert ev.system.system_id == SYSTEM and ev.infra is not None and ev.soc is not None
    assert ev.drills is not None and ev.crypto is not None and ev.hosts is not None
    assert {"register", "hosts", "soc", "drills", "infra", "crypto"} <= set(ev.provenance)
    assert all(p.digest and len(p.digest) == 64 for p in ev.provenance.values())
    assert evaluate(ev).level == 3
    assert collect_evidence(city, SYSTEM, probe_targets=[]).system.system_id == SYSTEM


def test_unknown_system_and_unsupported_levels_are_named(city: Runtime) -> None:
    with pytest.raises(LookupError, match="SYS-NOPE-001 is not in the register"):
        collect(city, "SYS-NOPE-001")
    with pytest.raises(UnsupportedLevel, match="level 1: the 等保 catalog here covers levels 2 and 3 only"):
        collect(city, "SYS-CGJ-004")
