"""Cloud policy pack: every rule with passing and violating resources, the catalog schema, the evaluator and the
pulumi_policy wrapper (policies built and their callbacks run; the PolicyPack itself is never constructed)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from policies.cloud import checks
from policies.cloud.catalog import RuleCatalog, default_catalog, load_catalog
from policies.cloud.engine import evaluate
from policies.cloud.models import PlannedResource
from policies.cloud.pack import build_policies

LABELS = {
    "system_id": "SYS-GAJ-001",
    "department": "GAJ",
    "mlps_level": "3",
    "data_class": "important",
    "ticket_id": "TKT-1",
}
TAGS = [f"{k}={v}" for k, v in LABELS.items()]
K8S_LABELS = {f"yunshu/{k.replace('_', '-')}": v for k, v in LABELS.items()}


def res(type_: str, name: str, props: dict[str, Any] | None = None, **extra: Any) -> PlannedResource:
    return PlannedResource(urn=f"urn:pulumi:s::p::{type_}::{name}", type=type_, name=name, props=props or {}, **extra)


def params(rule_id: str) -> dict[str, Any]:
    return default_catalog().get(rule_id).params


def rule_messages(rule_id: str, resources: list[PlannedResource]) -> list[str]:
    report = evaluate(resources)
    (result,) = [r for r in report.results if r.rule_id == rule_id]
    return [v.message for v in result.violations]


# --- YS-CLOUD-001: no open admin / database ingress --------------------------------------------------------------


def sg_rule(**props: Any) -> PlannedResource:
    return res(checks.SECGROUP_RULE, "r", {"direction": "ingress", "ethertype": "IPv4", **props})


@pytest.mark.parametrize(
    "props",
    [
        {"protocol": "tcp", "portRangeMin": 22, "portRangeMax": 22, "remoteIpPrefix": "0.0.0.0/0"},
        {"protocol": "tcp", "portRangeMin": 3389, "portRangeMax": 3389, "remoteIpPrefix": "::/0"},
        {"protocol": "tcp", "portRangeMin": 3000, "portRangeMax": 3500, "remoteIpPrefix": "0.0.0.0/0"},  # 3306 inside
        {"protocol": "tcp", "portRangeMin": 6379, "remoteIpPrefix": "0.0.0.0/0"},
        {"portRangeMin": 27017, "portRangeMax": 27017, "remoteIpPrefix": "0.0.0.0/0"},  # any protocol
        {"protocol": "tcp", "remoteIpPrefix": "0.0.0.0/0"},  # every port
        {"protocol": "tcp", "portRangeMin": 5432, "portRangeMax": 5432},  # no remote at all: any source
    ],
)
def test_open_sensitive_ingress_is_a_violation(props: dict[str, Any]) -> None:
    found = checks.no_open_admin_or_database_ingress(sg_rule(**props), params("YS-CLOUD-001"))
    assert len(found) == 1 and any(src in found[0] for src in ("to 0.0.0.0/0", "to ::/0", "to any"))


@pytest.mark.parametrize(
    "props",
    [
        {"protocol": "tcp", "portRangeMin": 443, "portRangeMax": 443, "remoteIpPrefix": "0.0.0.0/0"},
        {"protocol": "tcp", "portRangeMin": 22, "portRangeMax": 22, "remoteIpPrefix": "198.18.4.0/22"},
        {"protocol": "tcp", "portRangeMin": 1521, "portRangeMax": 1521, "remoteIpPrefix": "2001:db8:4::/64"},
        {"protocol": "tcp", "portRangeMin": 3306, "portRangeMax": 3306, "remoteGroupId": "sg-app"},
        {"protocol": "icmp", "remoteIpPrefix": "0.0.0.0/0"},
    ],
)
def test_restricted_or_harmless_ingress_passes(props: dict[str, Any]) -> None:
    assert checks.no_open_admin_or_database_ingress(sg_rule(**props), params("YS-CLOUD-001")) == []


def test_egress_to_any_is_not_this_rules_business() -> None:
    rule = sg_rule(direction="egress", protocol="tcp", portRangeMin=22, portRangeMax=22, remoteIpPrefix="0.0.0.0/0")
    assert checks.no_open_admin_or_database_ingress(rule, params("YS-CLOUD-001")) == []


def test_domestic_database_ports_are_listed() -> None:
    found = checks.no_open_admin_or_database_ingress(
        sg_rule(protocol="tcp", portRangeMin=5236, portRangeMax=54321, remoteIpPrefix="::/0"), params("YS-CLOUD-001")
    )
    assert "5236 (达梦 DM)" in found[0] and "54321 (人大金仓 KingbaseES)" in found[0]


def netpol(*rules: dict[str, Any]) -> PlannedResource:
    return res(
        checks.NETWORK_POLICY,
        "np",
        {
            "metadata": {"namespace": "apps"},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress"], "ingress": list(rules)},
        },
    )


@pytest.mark.parametrize(
    ("rule", "hit"),
    [
        ({"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": [{"port": 5432, "protocol": "TCP"}]}, "5432"),
        ({"from": [{"ipBlock": {"cidr": "::/0"}}], "ports": [{"port": 3000, "endPort": 3400}]}, "3306"),
        ({"ports": [{"port": 22}]}, "22 (SSH)"),  # no `from`: every source
        ({"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}, "6379"),  # no ports: every port
    ],
)
def test_network_policy_open_to_any_on_sensitive_ports(rule: dict[str, Any], hit: str) -> None:
    found = checks.no_open_admin_or_database_ingress(netpol(rule), params("YS-CLOUD-001"))
    assert found and hit in found[0] and "NetworkPolicy np" in found[0]


@pytest.mark.parametrize(
    "rule",
    [
        {"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": [{"port": 443}]},
        {"from": [{"ipBlock": {"cidr": "198.18.4.0/22"}}], "ports": [{"port": 22}]},
        {"from": [{"namespaceSelector": {"matchLabels": {"team": "x"}}}], "ports": [{"port": 5432}]},
        {"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": [{"port": "postgres"}]},  # named port: unknown number
    ],
)
def test_network_policy_restricted_or_harmless_passes(rule: dict[str, Any]) -> None:
    assert checks.no_open_admin_or_database_ingress(netpol(rule), params("YS-CLOUD-001")) == []


# --- YS-CLOUD-002: level ≥ 3 volumes encrypted -------------------------------------------------------------------


def volume(level: int, volume_type: str | None = None, **extra: Any) -> PlannedResource:
    props: dict[str, Any] = {"size": 10, "metadata": {**LABELS, "mlps_level": str(level)}}
    if volume_type:
        props["volumeType"] = volume_type
    return res(checks.VOLUME, f"vol-l{level}-{volume_type}", props, **extra)


ENCRYPTED_TYPE = res(checks.VOLUME_TYPE, "vt", {"name": "sys-encrypted", "extraSpecs": {"yunshu:encrypted": "true"}})
PLAIN_TYPE = res(checks.VOLUME_TYPE, "vt-plain", {"name": "fast-ssd", "extraSpecs": {"volume_backend_name": "ssd"}})


def test_level_3_volume_on_an_encrypted_type_passes() -> None:
    p = params("YS-CLOUD-002")
    assert checks.volumes_encrypted_from_level_3([ENCRYPTED_TYPE, volume(3, "sys-encrypted")], p) == []
    assert checks.volumes_encrypted_from_level_3([volume(4, "encrypted-sm4")], p) == []  # platform type
    assert checks.volumes_encrypted_from_level_3([volume(2)], p) == []  # level 2: not required
    unknown_type = volume(3, None, dependencies=[ENCRYPTED_TYPE.urn])  # preview: type name not known yet
    assert checks.volumes_encrypted_from_level_3([ENCRYPTED_TYPE, unknown_type], p) == []


@pytest.mark.parametrize(
    "resources",
    [
        [volume(3)],
        [volume(3, "fast-ssd"), PLAIN_TYPE],
        [volume(4, "sys-encrypted")],  # the name is not declared encrypted anywhere
    ],
)
def test_level_3_volume_without_encryption_is_a_violation(resources: list[PlannedResource]) -> None:
    found = checks.volumes_encrypted_from_level_3(resources, params("YS-CLOUD-002"))
    assert len(found) == 1 and found[0][0] is resources[0] and "not encrypted" in found[0][1]


# --- YS-CLOUD-003: dual stack ------------------------------------------------------------------------------------

NET = res(checks.NETWORK, "net", {"name": "n"}, id="net-id")


def subnet(version: int, network_id: str | None = "net-id", **extra: Any) -> PlannedResource:
    props: dict[str, Any] = {"ipVersion": version, "cidr": "198.18.0.0/24" if version == 4 else "2001:db8::/64"}
    if network_id:
        props["networkId"] = network_id
    return res(checks.SUBNET, f"sub{version}-{network_id}", props, **extra)


def test_network_with_both_families_passes() -> None:
    assert checks.networks_dual_stack([NET, subnet(4), subnet(6)], {}) == []
    linked = [NET, subnet(4, None, dependencies=[NET.urn]), subnet(6, None, dependencies=[NET.urn])]
    assert checks.networks_dual_stack(linked, {}) == []


@pytest.mark.parametrize(
    ("resources", "missing"),
    [
        ([NET, subnet(4)], "IPv6"),
        ([NET, subnet(6)], "IPv4"),
        ([NET], "IPv4 and no IPv6"),
        ([NET, subnet(4), subnet(6, "other-net")], "IPv6"),  # the IPv6 subnet belongs to another network
    ],
)
def test_single_stack_network_is_a_violation(resources: list[PlannedResource], missing: str) -> None:
    found = checks.networks_dual_stack(resources, {})
    assert len(found) == 1 and found[0][0] is NET and f"no {missing} subnet" in found[0][1]


# --- YS-CLOUD-004: required labels -------------------------------------------------------------------------------


def test_complete_labels_pass_on_every_carrier() -> None:
    p = params("YS-CLOUD-004")
    assert checks.required_tags(res(checks.NETWORK, "n", {"tags": TAGS}), p) == []
    assert checks.required_tags(res(checks.VOLUME, "v", {"metadata": LABELS}), p) == []
    assert checks.required_tags(res(checks.NAMESPACE, "ns", {"metadata": {"labels": K8S_LABELS}}), p) == []
    assert checks.required_tags(res(checks.SECGROUP_RULE, "r", {}), p) == []  # no tag field: not checked


@pytest.mark.parametrize(
    ("resource", "problem"),
    [
        (res(checks.NETWORK, "n", {"tags": TAGS[:-1]}), "missing ticket_id"),
        (res(checks.VOLUME, "v", {"metadata": {**LABELS, "mlps_level": "5"}}), "mlps_level=5"),
        (res(checks.VOLUME, "v", {"metadata": {**LABELS, "data_class": "secret"}}), "data_class=secret"),
        (res(checks.NAMESPACE, "ns", {"metadata": {"labels": {}}}), "missing system_id"),
        (res("openstack:compute/instance:Instance", "i", {}), "missing department"),
    ],
)
def test_missing_or_invalid_labels_are_violations(resource: PlannedResource, problem: str) -> None:
    found = checks.required_tags(resource, params("YS-CLOUD-004"))
    assert len(found) == 1 and problem in found[0]


# --- YS-CLOUD-005: namespaces default deny + quota ---------------------------------------------------------------

NS = res(checks.NAMESPACE, "ns", {"metadata": {"name": "apps", "labels": K8S_LABELS}})
DENY = res(
    checks.NETWORK_POLICY,
    "deny",
    {
        "metadata": {"name": "default-deny", "namespace": "apps", "labels": K8S_LABELS},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
    },
)
QUOTA = res(
    checks.RESOURCE_QUOTA,
    "q",
    {
        "metadata": {"namespace": "apps", "labels": K8S_LABELS},
        "spec": {
            "hard": {
                "requests.cpu": "4",
                "requests.memory": "8Gi",
                "limits.cpu": "8",
                "limits.memory": "16Gi",
                "pods": "50",
            }
        },
    },
)


def test_namespace_with_default_deny_and_quota_passes() -> None:
    assert checks.namespaces_default_deny_and_quota([NS, DENY, QUOTA], params("YS-CLOUD-005")) == []


def _with_spec(spec: dict[str, Any]) -> PlannedResource:
    return res(checks.NETWORK_POLICY, "p", {"metadata": {"namespace": "apps"}, "spec": spec})


@pytest.mark.parametrize(
    ("resources", "problem"),
    [
        ([NS, QUOTA], "no default-deny"),
        ([NS, DENY], "no ResourceQuota"),
        ([NS, _with_spec({"podSelector": {}, "policyTypes": ["Ingress"]}), QUOTA], "no default-deny"),
        (
            [
                NS,
                _with_spec({"podSelector": {"matchLabels": {"app": "x"}}, "policyTypes": ["Ingress", "Egress"]}),
                QUOTA,
            ],
            "no default-deny",
        ),
        (
            [NS, _with_spec({"podSelector": {}, "policyTypes": ["Ingress", "Egress"], "ingress": [{}]}), QUOTA],
            "no default-deny",
        ),  # an allow-all rule is not a deny
        (
            [
                NS,
                DENY,
                res(checks.RESOURCE_QUOTA, "q", {"metadata": {"namespace": "apps"}, "spec": {"hard": {"pods": "5"}}}),
            ],
            "quota lacks requests.cpu",
        ),
        (
            [NS, res(checks.NETWORK_POLICY, "d", {**DENY.props, "metadata": {"namespace": "other"}}), QUOTA],
            "no default-deny",
        ),
    ],
)
def test_namespace_without_deny_or_quota_is_a_violation(resources: list[PlannedResource], problem: str) -> None:
    found = checks.namespaces_default_deny_and_quota(resources, params("YS-CLOUD-005"))
    assert len(found) == 1 and found[0][0] is NS and problem in found[0][1]


# --- YS-CLOUD-006 / 007 ------------------------------------------------------------------------------------------


def test_floating_ip_needs_the_exposure_tag() -> None:
    p = params("YS-CLOUD-006")
    good = res(checks.FLOATING_IP, "fip", {"tags": [*TAGS, "internet_exposure=TKT-9"]})
    assert checks.floating_ip_has_exposure_ticket(good, p) == []
    found = checks.floating_ip_has_exposure_ticket(res(checks.FLOATING_IP, "fip", {"tags": TAGS}), p)
    assert len(found) == 1 and "internet-exposure ticket" in found[0]


@pytest.mark.parametrize(
    ("level", "enforce", "ok"),
    [
        ("3", "restricted", True),
        ("2", "baseline", True),
        ("4", "baseline", False),
        ("3", None, False),
    ],
)
def test_namespace_pod_security(level: str, enforce: str | None, ok: bool) -> None:
    labels = {**K8S_LABELS, "yunshu/mlps-level": level}
    if enforce:
        labels["pod-security.kubernetes.io/enforce"] = enforce
    found = checks.namespace_pod_security(
        res(checks.NAMESPACE, "ns", {"metadata": {"labels": labels}}), params("YS-CLOUD-007")
    )
    assert (found == []) is ok


# --- catalog, evaluator, CrossGuard wrapper ----------------------------------------------------------------------


def test_catalog_is_complete_and_validated(tmp_path: Path) -> None:
    catalog = default_catalog()
    assert [r.id for r in catalog.rules] == [f"YS-CLOUD-00{i}" for i in range(1, 8)]
    assert all(r.title.zh and r.title.en and r.mlps is not None for r in catalog.rules)
    assert {r.check for r in catalog.rules} == set(checks.CHECKS)
    rule = catalog.rules[0].model_dump()
    with pytest.raises(ValueError, match="rule ids repeat"):
        RuleCatalog.model_validate({"rules": [rule, rule]})
    with pytest.raises(ValueError, match="unknown check function"):
        RuleCatalog.model_validate({"rules": [{**rule, "check": "no_such_check"}]})
    bad = tmp_path / "rules.yaml"
    bad.write_text("rules:\n  - id: CLOUD-1\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"rules\.yaml: invalid cloud policy rules"):
        load_catalog(bad)


def test_evaluate_counts_and_mandatory_gate() -> None:
    advisory_only = [res(checks.NAMESPACE, "ns", {"metadata": {"name": "apps", "labels": K8S_LABELS}}), DENY, QUOTA]
    report = evaluate(advisory_only)  # only YS-CLOUD-007 (advisory) is broken: pod security label missing
    assert report.violations == 1 and report.passed is True and report.checked_resources == 3
    broken = evaluate([sg_rule(protocol="tcp", portRangeMin=22, portRangeMax=22, remoteIpPrefix="0.0.0.0/0")])
    assert broken.passed is False
    (v,) = [v for r in broken.results for v in r.violations]
    assert (v.rule_id, v.severity, v.resource) == ("YS-CLOUD-001", "critical", "r")


def test_pulumi_policy_wrappers_report_through_the_callbacks() -> None:
    import pulumi_policy as pp

    policies = {p.name: p for p in build_policies()}
    assert set(policies) == {f"ys-cloud-00{i}" for i in range(1, 8)}
    assert isinstance(policies["ys-cloud-001"], pp.ResourceValidationPolicy)
    assert isinstance(policies["ys-cloud-003"], pp.StackValidationPolicy)
    assert policies["ys-cloud-001"].enforcement_level == pp.EnforcementLevel.MANDATORY
    assert policies["ys-cloud-007"].enforcement_level == pp.EnforcementLevel.ADVISORY

    reported: list[tuple[Any, ...]] = []
    open_ssh = SimpleNamespace(
        resource_type=checks.SECGROUP_RULE,
        name="ssh",
        urn="urn:ssh",
        props={
            "direction": "ingress",
            "protocol": "tcp",
            "portRangeMin": 22,
            "portRangeMax": 22,
            "remoteIpPrefix": "::/0",
        },
    )
    policies["ys-cloud-001"].validate(open_ssh, lambda *a: reported.append(a))
    assert len(reported) == 1 and "22 (SSH)" in reported[0][0]

    reported.clear()
    net = SimpleNamespace(
        resource_type=checks.NETWORK, name="net", urn="urn:net", props={"id": "n1"}, parent=None, dependencies=[]
    )
    v4 = SimpleNamespace(
        resource_type=checks.SUBNET,
        name="s4",
        urn="urn:s4",
        props={"ipVersion": 4, "networkId": "n1"},
        parent=None,
        dependencies=[net],
    )
    policies["ys-cloud-003"].validate(SimpleNamespace(resources=[net, v4]), lambda *a: reported.append(a))
    assert len(reported) == 1 and reported[0][1] == "urn:net" and "IPv6" in reported[0][0]
