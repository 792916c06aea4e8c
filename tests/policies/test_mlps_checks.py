"""Every automatic check with passing and failing evidence, and 待人工 when its evidence is missing."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from policies.mlps.checks import REGISTRY, CheckContext, run_check
from policies.mlps.evidence import Evidence
from policies.mlps.results import Result
from tests.policies.mlps_evidence import AS_OF, good

Mutation = Callable[[dict[str, Any]], None]


def _set(data: dict[str, Any], path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    node: Any = data
    for key in parents:
        node = node[int(key)] if key.isdigit() else node[key]
    node[int(leaf) if leaf.isdigit() else leaf] = value


def at(path: str, value: Any) -> Mutation:
    return lambda d: _set(d, path, value)


def every_host(path: str, value: Any) -> Mutation:
    def change(d: dict[str, Any]) -> None:
        for h in d["hosts"]:
            _set(h, path, copy.deepcopy(value))

    return change


def first_host(path: str, value: Any) -> Mutation:
    return lambda d: _set(d["hosts"][0], path, value)


def append(path: str, value: Any) -> Mutation:
    def change(d: dict[str, Any]) -> None:
        node: Any = d
        for key in path.split("."):
            node = node[key]
        node.append(value)

    return change


def both(*changes: Mutation) -> Mutation:
    def change(d: dict[str, Any]) -> None:
        for c in changes:
            c(d)

    return change


def evaluate(check_id: str, data: dict[str, Any]) -> Result:
    ev = Evidence.model_validate(data)
    return run_check(check_id, ev, CheckContext(level=ev.system.mlps_level, as_of=AS_OF)).result


N, P, C, NA = Result.NON_COMPLIANT, Result.PARTIAL, Result.COMPLIANT, Result.NOT_APPLICABLE
LISTEN = [{"proto": "tcp", "port": 22, "address": "0.0.0.0"}]

FAILING: list[tuple[str, Mutation, Result]] = [
    ("host.password_complexity", every_host("password.minlen", 6), N),
    ("host.password_complexity", first_host("password.max_days", 365), P),
    ("host.no_empty_passwords", first_host("empty_password_accounts", ["guest"]), P),
    ("host.no_empty_passwords", every_host("sshd.permit_empty_passwords", True), N),
    ("host.login_failure_lockout", every_host("faillock.enabled", False), N),
    ("host.login_failure_lockout", every_host("faillock.deny", 10), N),
    ("host.session_timeout", both(every_host("tmout", None), every_host("sshd.client_alive_interval", None)), N),
    ("host.session_timeout", both(every_host("tmout", 3600), every_host("sshd.client_alive_interval", 1800)), N),
    (
        "host.remote_admin_encrypted",
        first_host("listening", [*LISTEN, {"proto": "tcp", "port": 23, "address": "::"}]),
        P,
    ),
    ("host.multi_factor", every_host("sshd.authentication_methods", None), N),
    ("host.multi_factor", every_host("sshd.authentication_methods", "password,keyboard-interactive"), N),
    ("host.default_accounts", every_host("sshd.permit_root_login", "yes"), N),
    ("host.default_accounts", first_host("uid0_accounts", ["root", "toor"]), P),
    ("host.stale_accounts", first_host("stale_accounts", ["olduser"]), P),
    ("host.stale_accounts", every_host("shared_accounts", ["ops"]), N),
    ("host.sudo_least_privilege", every_host("sudo_nopasswd_all", ["deploy"]), N),
    ("host.mac_enforcing", every_host("mac", {"kind": "selinux", "mode": "permissive"}), N),
    ("host.auditd_enabled", every_host("auditd.running", False), N),
    ("host.audit_immutable", every_host("auditd.immutable", False), N),
    ("host.log_forwarding", every_host("rsyslog", {"forwarding": False, "targets": []}), N),
    (
        "host.no_high_risk_ports",
        first_host("listening", [*LISTEN, {"proto": "tcp", "port": 445, "address": "0.0.0.0"}]),
        P,
    ),
    ("host.admin_source_restricted", every_host("sshd.allowed_sources", []), N),
    ("host.admin_source_restricted", every_host("sshd.allowed_sources", ["10.0.0.0/8", "::/0"]), N),
    ("host.patches_current", first_host("exploitable_vulns", ["CVE-2024-6387"]), P),
    ("host.patches_current", every_host("pending_security_updates", 3), N),
    ("host.antimalware", every_host("antimalware.signatures_age_days", 30), N),
    ("host.antimalware", every_host("antimalware.running", False), N),
    ("host.baseline_applied", every_host("baseline", {"playbook": None, "applied_at": None}), N),
    ("host.facts_recent", every_host("collected_at", AS_OF - timedelta(days=30)), N),
    ("net.default_deny", at("infra.default_deny", False), N),
    (
        "net.no_public_admin_ports",
        append(
            "infra.security_rules",
            {"group": "db", "protocol": "tcp", "port_min": 22, "port_max": 22, "remote": "0.0.0.0/0"},
        ),
        N,
    ),
    ("net.no_public_admin_ports", append("infra.security_rules", {"group": "any", "remote": "::/0"}), N),
    (
        "net.rules_specific",
        append("infra.security_rules", {"group": "web", "protocol": None, "remote": "10.0.0.0/8"}),
        P,
    ),
    (
        "net.rules_specific",
        at("infra.security_rules", [{"group": "web", "protocol": "tcp", "remote": "10.0.0.0/8"}]),
        N,
    ),
    ("net.zone_addressing", at("register.hosts.0.ipv4", "10.99.0.5"), P),
    ("net.dual_stack", at("register.network_stack", "ipv4"), N),
    ("net.dual_stack", at("register.hosts.0.ipv6", None), P),
    ("crypto.tls_in_transit", at("crypto.endpoints", [{"name": "portal", "protocols": ["TLSv1.0", "TLSv1.2"]}]), N),
    (
        "crypto.tls_in_transit",
        append("crypto.endpoints", {"name": "api", "protocols": ["TLSv1.3"], "plaintext": True}),
        P,
    ),
    ("crypto.commercial_crypto", at("crypto.sm_algorithms_in_use", ["SM2"]), N),
    ("crypto.commercial_crypto", at("crypto.certified_products", False), N),
    ("crypto.application_scheme", at("crypto.scheme_on_file", False), N),
    ("infra.volume_encryption", at("infra.volumes.1.encrypted", False), P),
    ("infra.backup_recent", at("infra.backups.policy", False), N),
    ("infra.backup_recent", at("infra.backups.last_backup_at", AS_OF - timedelta(days=3)), P),
    ("infra.offsite_backup", at("infra.backups.offsite", False), N),
    ("infra.offsite_backup", at("infra.backups.offsite_realtime", False), P),
    ("infra.customer_local_copy", at("infra.backups.local_copy", False), N),
    ("infra.redundancy", lambda d: d["infra"]["instances"].pop(), P),
    ("infra.restore_tested", at("infra.backups.last_restore_test_at", None), N),
    ("infra.in_china", at("infra.country", "SG"), N),
    ("infra.in_china", at("infra.ops_countries", ["CN", "US"]), N),
    ("infra.tenant_isolation", at("infra.isolated_tenant_network", False), N),
    ("infra.exposure_approved", at("infra.instances.0.floating_ip", True), N),
    ("infra.platform_level", at("infra.platform_mlps_level", 2), N),
    ("infra.drift_free", append("infra.instances", {"name": "miner", "in_register": False}), N),
    ("soc.sources_reporting", at("soc.hosts_reporting_24h", ["web-01", "web-02", "db-01"]), P),
    ("soc.sources_reporting", at("soc.hosts_reporting_24h", []), N),
    ("soc.retention_180d", at("soc.retention_days", 90), N),
    ("soc.alert_sla", at("soc.alerts_over_sla", 3), P),
    ("soc.network_detection", at("soc.network_rules_enabled", 0), P),
    ("soc.network_detection", both(at("soc.network_rules_enabled", 0), at("soc.network_sources_reporting", False)), N),
    ("register.grading_record", at("register.grading_info_level", None), N),
    ("register.grading_record", at("register.grading_info_level", 2), N),
    ("register.filed", at("register.filing_no", None), N),
    ("register.assessment_current", at("register.last_assessment", (AS_OF - timedelta(days=500)).date()), N),
    ("register.assessment_current", at("register.last_assessment", None), N),
    ("register.asset_inventory", at("register.owner", ""), N),
    ("register.asset_inventory", at("register.hosts.0.role", ""), P),
    ("register.data_classified", at("register.data_class", None), P),
    ("register.data_classified", both(at("register.data_class", None), at("register.public_data_level", None)), N),
    ("drills.annual_emergency_drill", at("drills.drills.0.held_on", (AS_OF - timedelta(days=400)).date()), N),
    ("drills.annual_emergency_drill", at("drills.drills.0.kind", "attack_defense"), N),
    ("drills.findings_closed", at("drills.drills.0.findings_open", 1), P),
    ("drills.findings_closed", at("drills.drills", []), N),
    ("k8s.network_default_deny", lambda d: d["k8s"][0]["network_policies"].pop(0), N),
    ("k8s.network_allows_specific", at("k8s.0.network_policies.2.ingress.0.ports", []), P),
    ("k8s.namespace_isolation", at("k8s.0.quotas", []), N),
    ("k8s.rbac_least_privilege", at("k8s.0.bindings.0.subjects", [{"kind": "User", "name": "zhang.san"}]), P),
    ("k8s.pod_security", at("k8s.0.pod_security_enforce", "privileged"), N),
]

# Changes that look suspicious but must not fail the check.
STILL_PASSING: list[tuple[str, Mutation]] = [
    (
        "host.remote_admin_encrypted",
        every_host("listening", [*LISTEN, {"proto": "tcp", "port": 23, "address": "127.0.0.1"}]),
    ),
    ("host.session_timeout", both(every_host("tmout", None), every_host("sshd.client_alive_interval", 300))),
    (
        "net.no_public_admin_ports",
        append(
            "infra.security_rules",
            {"group": "web", "protocol": "tcp", "port_min": 80, "port_max": 443, "remote": "0.0.0.0/0"},
        ),
    ),
    ("infra.volume_encryption", at("infra.volumes", [])),  # no volumes: 不适用, not a failure
]


def test_every_check_passes_on_good_evidence() -> None:
    data = good()
    results = {cid: evaluate(cid, data) for cid in REGISTRY}
    assert {cid: r for cid, r in results.items() if r is not C} == {}


def test_every_check_has_a_failing_case() -> None:
    assert {cid for cid, _, _ in FAILING} == set(REGISTRY)


@pytest.mark.parametrize(
    ("check_id", "change", "expected"), FAILING, ids=[f"{c}-{i}" for i, (c, _, _) in enumerate(FAILING)]
)
def test_check_fails_on_bad_evidence(check_id: str, change: Mutation, expected: Result) -> None:
    data = good()
    change(data)
    assert evaluate(check_id, data) is expected


@pytest.mark.parametrize(("check_id", "change"), STILL_PASSING, ids=[c for c, _ in STILL_PASSING])
def test_harmless_changes_do_not_fail(check_id: str, change: Mutation) -> None:
    data = good()
    change(data)
    assert evaluate(check_id, data) in (C, NA)


@pytest.mark.parametrize("section", ["hosts", "infra", "soc", "drills", "crypto", "k8s"])
def test_missing_evidence_is_pending_never_pass_or_fail(section: str) -> None:
    data = good()
    data[section] = None
    for cid, spec in REGISTRY.items():
        if spec.source == section:
            assert evaluate(cid, data) is Result.PENDING, cid


def test_host_without_facts_makes_host_checks_pending() -> None:
    data = good()
    data["hosts"].pop()  # db-02 is registered but no facts were gathered
    assert evaluate("host.password_complexity", data) is Result.PENDING
    data["hosts"][0]["password"]["minlen"] = 4  # a known failure outweighs the unknown host
    assert evaluate("host.password_complexity", data) is Result.PARTIAL


def test_level_dependent_checks() -> None:
    data = good(level=2)
    data["infra"]["backups"]["offsite_realtime"] = False
    assert evaluate("infra.offsite_backup", data) is C  # level 2 needs off-site, not real-time
    assert evaluate("crypto.application_scheme", data) is NA
    data = good(cloud_role=None)
    data["register"]["hosting"] = "local_idc"
    assert evaluate("infra.platform_level", data) is NA


def test_partial_account_facts_can_fail_but_not_pass() -> None:
    data = good()
    for h in data["hosts"]:
        h["default_accounts_enabled"] = None
    assert evaluate("host.default_accounts", data) is Result.PENDING
    data["hosts"][0]["sshd"]["permit_root_login"] = "yes"
    assert evaluate("host.default_accounts", data) is N  # a known failure; the other hosts are unknown


def test_root_login_policy_is_a_parameter() -> None:
    """The shipped baseline accepts key-only root logins (what onboard.yml sets); a stricter parameter refuses them,
    and a root password login is refused either way."""
    data = good()
    for h in data["hosts"]:
        h["sshd"]["permit_root_login"] = "prohibit-password"
    ev = Evidence.model_validate(data)
    shipped = CheckContext(level=3, as_of=AS_OF)
    assert run_check("host.default_accounts", ev, shipped).result is C
    strict = CheckContext(
        level=3,
        as_of=AS_OF,
        params=shipped.params.model_copy(
            update={"accounts": shipped.params.accounts.model_copy(update={"root_ssh_login_allowed": ["no"]})}
        ),
    )
    assert run_check("host.default_accounts", ev, strict).result is N
    for h in data["hosts"]:
        h["sshd"]["permit_root_login"] = "yes"
    assert run_check("host.default_accounts", Evidence.model_validate(data), shipped).result is N


def test_check_reports_reason_and_evidence_used() -> None:
    data = good()
    data["hosts"][1]["password"]["minlen"] = 6
    ev = Evidence.model_validate(data)
    res = run_check("host.password_complexity", ev, CheckContext(level=3, as_of=AS_OF))
    assert "web-02" in res.reason_zh and "minlen 6 < 8" in res.reason_en
    assert res.evidence["failed"]["web-02"]["minlen"] == 6 and "web-01" in res.evidence["passed"]


def test_unknown_check_is_named() -> None:
    with pytest.raises(KeyError, match=r"host\.nope"):
        run_check("host.nope", Evidence.model_validate(good()), CheckContext(level=3))
