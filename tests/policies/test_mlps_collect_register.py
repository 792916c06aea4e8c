"""The register collector on the sample city: facts, provenance, and an evaluation from the register alone."""

from __future__ import annotations

import ipaddress
from datetime import date

import pytest

from core.runtime import Runtime
from policies.mlps.collect_register import evidence_from_register, register_facts
from policies.mlps.evaluate import evaluate
from policies.mlps.results import Result
from tests.conftest import load_sample
from tests.policies.mlps_evidence import AS_OF


def test_register_facts_of_a_sample_system(sqlite_rt: Runtime) -> None:
    load_sample(sqlite_rt)
    with sqlite_rt.transaction() as session:
        facts, prov = register_facts(session, "SYS-ZFB-001", filing_no="F-1", last_assessment=date(2026, 6, 1))
        _, prov2 = register_facts(session, "SYS-ZFB-001")
    assert facts.mlps_level == 3 and facts.department == "ZFB" and facts.hosting == "local_idc"
    assert (facts.grading_info_level, facts.grading_service_level) == (
        3,
        3,
    )  # citizen/especially serious, order/serious
    assert "zfb-zwxtbg-web01" in {h.name for h in facts.hosts}
    prefixes = [ipaddress.ip_network(p) for n in facts.networks for p in n.prefixes]
    assert any(ipaddress.ip_address("198.18.16.17") in p for p in prefixes if p.version == 4)
    assert any(ipaddress.ip_address("2001:db8:1001:1::11") in p for p in prefixes if p.version == 6)
    assert prov.source == "register" and len(prov.digest or "") == 64 and prov.digest == prov2.digest
    assert facts.effective_cloud_role is None


def test_evaluation_from_the_register_alone(sqlite_rt: Runtime) -> None:
    load_sample(sqlite_rt)
    with sqlite_rt.transaction() as session:
        ev = evidence_from_register(session, "SYS-ZFB-001")
    result = evaluate(ev, as_of=AS_OF)
    by_check = {c.check: c.result for r in result.results for c in r.checks}
    assert by_check["register.grading_record"] is Result.COMPLIANT
    assert by_check["net.zone_addressing"] is Result.COMPLIANT  # sample hosts sit inside registered prefixes
    assert by_check["register.filed"] is Result.NON_COMPLIANT  # no filing number in the register yet
    assert by_check["host.password_complexity"] is Result.PENDING  # no host facts collected
    assert result.provisional and len(result.results) == 211


def test_unknown_system_is_named(sqlite_rt: Runtime) -> None:
    with sqlite_rt.transaction() as session, pytest.raises(LookupError, match="SYS-NOPE"):
        register_facts(session, "SYS-NOPE")
