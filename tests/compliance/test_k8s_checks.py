"""The Kubernetes 等保 checks (policies/mlps/checks/k8s.py) on plain evidence: what K8sTenant creates passes; each
weakness fails the check it belongs to; a missing section is 待人工 on a cloud and 不适用 elsewhere; several
namespaces combine; and the catalog items that also have other checks still combine correctly."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from policies.mlps.checks import REGISTRY, CheckContext, run_check
from policies.mlps.evaluate import Evaluator
from policies.mlps.evidence import Evidence
from policies.mlps.params import PARAMS_FILE, default_params, load_params
from policies.mlps.results import Result
from tests.policies.mlps_evidence import AS_OF, good, k8s_namespace

C, P, N, NA, PENDING = Result.COMPLIANT, Result.PARTIAL, Result.NON_COMPLIANT, Result.NOT_APPLICABLE, Result.PENDING
K8S_CHECKS = sorted(c for c, spec in REGISTRY.items() if spec.source == "k8s")


def evidence(*namespaces: dict[str, Any], level: int = 3, hosting: str = "gov_cloud") -> dict[str, Any]:
    return {"register": {"system_id": "SYS-TEST-01", "department": "DSJ", "mlps_level": level, "hosting": hosting},
            "k8s": list(namespaces)}


def run(check_id: str, data: dict[str, Any], params: Any = None) -> Result:
    ev = Evidence.model_validate(data)
    ctx = CheckContext(level=ev.system.mlps_level, as_of=AS_OF, params=params or default_params())
    return run_check(check_id, ev, ctx).result


def reason(check_id: str, data: dict[str, Any]) -> str:
    ev = Evidence.model_validate(data)
    return run_check(check_id, ev, CheckContext(level=ev.system.mlps_level, as_of=AS_OF)).reason_en


def test_the_five_checks_are_registered_as_k8s_checks() -> None:
    assert K8S_CHECKS == ["k8s.namespace_isolation", "k8s.network_allows_specific", "k8s.network_default_deny",
                          "k8s.pod_security", "k8s.rbac_least_privilege"]


@pytest.mark.parametrize("level", [2, 3])
def test_what_k8s_tenant_creates_passes_every_check(level: int) -> None:
    data = evidence(k8s_namespace(level=level), level=level)
    assert {c: run(c, data) for c in K8S_CHECKS} == dict.fromkeys(K8S_CHECKS, C)


@pytest.mark.parametrize(("hosting", "k8s", "expected"), [
    ("gov_cloud", None, PENDING),  # no cluster configured: it may run there, nobody looked
    ("dept_cloud", None, PENDING),
    ("local_idc", None, NA),  # Yunshu's namespaces exist only on the clouds
    ("gov_cloud", [], NA),  # the cluster was read: the system has no namespace there
])
def test_missing_or_empty_section(hosting: str, k8s: list | None, expected: Result) -> None:
    data = evidence(hosting=hosting)
    data["k8s"] = k8s
    assert {c: run(c, data) for c in K8S_CHECKS} == dict.fromkeys(K8S_CHECKS, expected)
    if expected is PENDING:
        assert "no cluster configured" in reason("k8s.pod_security", data)


# --- network policies -----------------------------------------------------------------------------------------


def policies(ns: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in ns["network_policies"]}


def test_default_deny_missing_partial_or_voided() -> None:
    ns = k8s_namespace()
    ns["network_policies"] = [p for p in ns["network_policies"] if p["name"] != "default-deny"]
    assert run("k8s.network_default_deny", evidence(ns)) is N
    assert "no default-deny ingress" in reason("k8s.network_default_deny", evidence(ns))

    ingress_only = k8s_namespace()
    policies(ingress_only)["default-deny"]["policy_types"] = ["Ingress"]
    assert run("k8s.network_default_deny", evidence(ingress_only)) is P  # egress is open
    relaxed = default_params().model_copy(update={"k8s": default_params().k8s.model_copy(
        update={"require_egress_deny": False})})
    assert run("k8s.network_default_deny", evidence(ingress_only), relaxed) is C

    voided = k8s_namespace()  # an allow-everything policy for every pod makes the default deny meaningless
    voided["network_policies"].append({"name": "allow-all", "policy_types": ["Ingress"], "ingress": [{}]})
    assert run("k8s.network_default_deny", evidence(voided)) is N
    to_world = k8s_namespace()
    to_world["network_policies"].append({"name": "to-world", "policy_types": ["Egress"],
                                         "egress": [{"peers": [{"cidr": "::/0"}]}]})
    assert run("k8s.network_default_deny", evidence(to_world)) is P

    narrow = k8s_namespace()  # the same, but only for some pods: the default still denies the others
    narrow["network_policies"].append({"name": "web-all", "pod_selector": {"app": "web"},
                                       "policy_types": ["Ingress"], "ingress": [{}]})
    assert run("k8s.network_default_deny", evidence(narrow)) is C


def test_allow_rules_must_name_peers_and_ports() -> None:
    assert run("k8s.network_allows_specific", evidence(k8s_namespace())) is C
    any_port = k8s_namespace()
    policies(any_port)["allow-web"]["ingress"][0]["ports"] = []
    assert run("k8s.network_allows_specific", evidence(any_port)) is P  # allow-dns is still specific
    assert "allow-web ingress[0]: every port" in reason("k8s.network_allows_specific", evidence(any_port))

    world = k8s_namespace()
    policies(world)["allow-web"]["ingress"][0]["peers"] = [{"cidr": "0.0.0.0/0"}]
    policies(world)["allow-dns"]["egress"][0]["peers"] = [{"namespace_selector": {}}]  # every pod everywhere
    assert run("k8s.network_allows_specific", evidence(world)) is N
    assert "any peer" in reason("k8s.network_allows_specific", evidence(world))

    carved = k8s_namespace()  # the world minus the city's ranges is still a stated range
    policies(carved)["allow-web"]["ingress"][0]["peers"] = [{"cidr": "0.0.0.0/0", "except_cidrs": ["10.0.0.0/8"]}]
    assert run("k8s.network_allows_specific", evidence(carved)) is C
    deny_only = k8s_namespace()
    deny_only["network_policies"] = deny_only["network_policies"][:1]
    assert run("k8s.network_allows_specific", evidence(deny_only)) is C  # nothing allowed at all


# --- isolation ------------------------------------------------------------------------------------------------


def test_namespace_isolation_needs_quota_and_limits() -> None:
    no_quota = k8s_namespace()
    no_quota["quotas"] = []
    assert run("k8s.namespace_isolation", evidence(no_quota)) is N
    assert "no ResourceQuota" in reason("k8s.namespace_isolation", evidence(no_quota))

    thin = k8s_namespace()
    del thin["quotas"][0]["hard"]["pods"]
    assert run("k8s.namespace_isolation", evidence(thin)) is P
    assert "quota does not limit pods" in reason("k8s.namespace_isolation", evidence(thin))

    no_limits = k8s_namespace()
    no_limits["limit_ranges"] = []
    assert run("k8s.namespace_isolation", evidence(no_limits)) is P
    no_max = k8s_namespace()
    no_max["limit_ranges"][0]["limits"][0]["max"] = {"cpu": "4"}  # no memory ceiling
    assert "LimitRange lacks max" in reason("k8s.namespace_isolation", evidence(no_max))

    foreign = k8s_namespace(department="RSJ")  # labelled for another department
    assert run("k8s.namespace_isolation", evidence(foreign)) is N
    unread = k8s_namespace()
    unread["quotas"] = None
    unread["unreadable"] = {"resourcequotas": "403 Forbidden"}
    assert run("k8s.namespace_isolation", evidence(unread)) is PENDING


# --- RBAC -----------------------------------------------------------------------------------------------------


def binding(name: str, role: str, *subjects: tuple[str, str], scope: str = "namespace",
            kind: str = "ClusterRole") -> dict[str, Any]:
    return {"name": name, "scope": scope, "role_kind": kind, "role": role,
            "subjects": [{"kind": k, "name": n} for k, n in subjects]}


@pytest.mark.parametrize(("extra_binding", "extra_role", "expected", "words"), [
    (binding("ops", "cluster-admin", ("User", "li.si")), None, N, "grants cluster-admin (User:li.si)"),
    (binding("ci", "cluster-admin", ("ServiceAccount", "deployer"), scope="cluster"), None, N,
     "ClusterRoleBinding ci grants cluster-admin"),
    (binding("all", "view", ("Group", "system:authenticated")), None, N, "grants to everyone"),
    (binding("one", "edit", ("User", "zhang.san")), None, P, "bound to individual users"),
    (None, {"name": "god", "kind": "Role", "rules": [{"api_groups": ["*"], "resources": ["*"], "verbs": ["*"]}]},
     N, "Role god has wildcard"),
    (binding("sa", "view", ("ServiceAccount", "app")), None, C, ""),
    (binding("ctrl", "edit", ("User", "system:kube-controller-manager"), scope="cluster"), None, C, ""),
])
def test_rbac_least_privilege(extra_binding: dict | None, extra_role: dict | None, expected: Result,
                              words: str) -> None:
    ns = k8s_namespace()
    if extra_binding:
        ns["bindings"].append(extra_binding)
    if extra_role:
        ns["roles"].append(extra_role)
    assert run("k8s.rbac_least_privilege", evidence(ns)) is expected
    assert words in reason("k8s.rbac_least_privilege", evidence(ns))


def test_rbac_unknowns() -> None:
    no_roles = k8s_namespace()
    no_roles["roles"] = None  # wildcards unknown
    assert run("k8s.rbac_least_privilege", evidence(no_roles)) is PENDING
    no_roles["bindings"].append(binding("ops", "cluster-admin", ("User", "li.si")))
    assert run("k8s.rbac_least_privilege", evidence(no_roles)) is N  # a known failure is a failure
    no_bindings = k8s_namespace()
    no_bindings["bindings"] = None
    assert run("k8s.rbac_least_privilege", evidence(no_bindings)) is PENDING


# --- pod security ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("level", "enforce", "expected"), [
    (3, "restricted", C), (3, "baseline", N), (3, "privileged", N), (3, None, N),
    (2, "baseline", C), (2, "restricted", C), (2, "privileged", N),
])
def test_pod_security_per_level(level: int, enforce: str | None, expected: Result) -> None:
    ns = k8s_namespace(level=level)
    ns["pod_security_enforce"] = enforce
    assert run("k8s.pod_security", evidence(ns, level=level)) is expected


# --- several namespaces ---------------------------------------------------------------------------------------


def test_namespaces_combine() -> None:
    bad = k8s_namespace("dsj-bad")
    bad["pod_security_enforce"] = "privileged"
    assert run("k8s.pod_security", evidence(k8s_namespace(), bad)) is P
    assert "1/2 namespace(s) fail (dsj-bad: enforces privileged" in reason("k8s.pod_security",
                                                                          evidence(k8s_namespace(), bad))
    assert run("k8s.pod_security", evidence(bad, copy.deepcopy(bad) | {"namespace": "dsj-bad2"})) is N
    unread = k8s_namespace("dsj-unread")
    unread["network_policies"] = None
    assert run("k8s.network_default_deny", evidence(k8s_namespace(), unread)) is PENDING
    no_deny = k8s_namespace("dsj-open")
    no_deny["network_policies"] = []
    assert run("k8s.network_default_deny", evidence(no_deny, unread)) is N  # the unknown one cannot save it


# --- the catalog items: combination with the other checks ------------------------------------------------------


def _unit(data: dict[str, Any], unit: str) -> tuple[Result, dict[str, Result]]:
    evaluation = Evaluator().evaluate(data, as_of=AS_OF)
    req = next(r for r in evaluation.results if r.requirement.unit == unit)
    return req.result, {c.check: c.result for c in req.checks}


def test_linked_items_combine_with_the_other_checks() -> None:
    data = good()
    assert _unit(data, "L3-ABS2-01") == (C, {"net.default_deny": C, "k8s.network_default_deny": C})
    data["k8s"][0]["network_policies"] = []  # security groups deny, the namespace does not
    result, checks = _unit(data, "L3-ABS2-01")
    assert (result, checks["k8s.network_default_deny"]) == (P, N)
    evaluation = Evaluator().evaluate(data, as_of=AS_OF)
    assert "L3-ABS2-01" in {f.unit for f in evaluation.high_risks}  # 7.3.1.1 虚拟网络边界无访问控制

    data = good()
    data["k8s"] = None  # no cluster configured: never 符合 without the Kubernetes evidence
    assert _unit(data, "L3-CES1-08")[0] is PENDING
    data["hosts"][0]["sudo_nopasswd_all"] = ["deploy"]  # but a known failure still shows
    assert _unit(data, "L3-CES1-08")[0] is P

    data = good()
    data["k8s"] = []  # not on Kubernetes: the item rests on the other checks
    assert _unit(data, "L3-CNS2-02") == (C, {"infra.tenant_isolation": C, "k8s.namespace_isolation": NA})
    data = good(cloud_role=None)
    data["register"]["hosting"], data["k8s"] = "local_idc", None
    assert _unit(data, "L3-ABS1-07") == (C, {"net.rules_specific": C, "k8s.network_allows_specific": NA})


def test_catalog_links() -> None:
    evaluator = Evaluator()
    linked: dict[str, set[str]] = {}
    for level in (2, 3):
        for req in evaluator.catalog.for_system(level, "platform"):
            for c in (*req.checks, *req.advisory_checks):
                if c.startswith("k8s."):
                    linked.setdefault(c, set()).add(req.unit)
    assert linked == {
        "k8s.network_default_deny": {"L2-ABS1-02", "L3-ABS1-05", "L2-CNS1-02", "L3-CNS1-04", "L2-ABS2-01",
                                     "L3-ABS2-01"},
        "k8s.network_allows_specific": {"L2-ABS1-04", "L3-ABS1-07"},
        "k8s.namespace_isolation": {"L2-CNS2-02", "L3-CNS2-02", "L3-SMC2-01"},
        "k8s.rbac_least_privilege": {"L2-CES1-07", "L3-CES1-08"},
        "k8s.pod_security": {"L2-CES1-07", "L3-CES1-08"},
    }
    assert "k8s.namespace_isolation" in evaluator.catalog.by_unit("L3-SMC2-01").advisory_checks  # shown, not scored


# --- parameters -----------------------------------------------------------------------------------------------


def test_k8s_parameters_are_validated(tmp_path: Path) -> None:
    assert default_params().k8s.pod_security[3] == ["restricted"]
    data = yaml.safe_load(PARAMS_FILE.read_text(encoding="utf-8"))
    data["k8s"]["pod_security"] = {2: ["baseline"], 3: ["strict"]}
    bad = tmp_path / "check_params.yaml"
    bad.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ValueError, match=r"check_params.yaml: k8s.pod_security.3.0"):
        load_params(bad)
    data["k8s"]["pod_security"] = {2: ["baseline"]}
    bad.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ValueError, match=r"k8s.pod_security: .*level\(s\) \[3\]"):
        load_params(bad)


def test_every_k8s_check_has_a_remediation_suggestion() -> None:
    from portal.compliance.remediation import suggestion_for, suggestions

    for cid in K8S_CHECKS:
        own = suggestions().checks[cid]  # its own suggestion, not the family's or the default
        got = suggestion_for({"result": "不符合", "family": "CES", "checks": [{"check": cid, "result": "不符合"}]})
        assert got == {"zh": own.zh, "en": own.en}
