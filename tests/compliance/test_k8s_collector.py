"""The Kubernetes collector through the official ``kubernetes`` client over HTTP(S), against the test API server
(tests/k8s_api.py) loaded with what Yunshu itself plans: the Kubernetes objects of a 云资源申请 ticket's plan and of
a register-made K8sTenant. What Yunshu plans passes its own 等保 checks; the weakened variants fail the check they
belong to; an unreachable server, a wrong token, a 403 and a missing configuration give clear reasons and 待人工."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml
from pydantic import ValidationError

from core.runtime import Runtime
from core.settings import KubernetesSettings, Settings
from infra.cloud.from_register import k8s_spec
from infra.cloud.plan import plan
from policies.mlps.checks import REGISTRY, CheckContext
from policies.mlps.evidence import Evidence, K8sFacts
from policies.mlps.results import Result
from portal.compliance.collect import collect
from portal.compliance.collect_k8s import collect_k8s
from portal.compliance.store import run_evaluation
from portal.compliance.system_info import SystemInfo, system_info
from portal.tickets import service as svc
from portal.tickets.models import Ticket
from tests.compliance.helpers import free_port
from tests.conftest import sample_city
from tests.k8s_api import KubeApi, cluster_defaults, kube_api, objects_from_plan

TOKEN = "yunshu-collector-token-0123456789"
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
SAMPLES = Path(__file__).resolve().parents[2] / "inventory" / "samples" / "tickets"
GAJ_CLOUD = "SYS-GAJ-008"  # level 3, gov_cloud: served by the department's shared namespace
GAJ_IDC = "SYS-GAJ-006"  # level 3, local IDC
SJJ = "SYS-SJJ-002"  # level 3, gov_cloud: gets a namespace of its own
K8S_CHECKS = sorted(c for c, spec in REGISTRY.items() if spec.source == "k8s")
C, N, PENDING, NA = Result.COMPLIANT, Result.NON_COMPLIANT, Result.PENDING, Result.NOT_APPLICABLE


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    with sample_city(tmp_path_factory, "mlps-k8s") as rt:
        yield rt


@pytest.fixture(scope="module")
def planned(city: Runtime) -> list[dict[str, Any]]:
    """The Kubernetes objects Yunshu plans: the sample 云资源申请 ticket's namespace (the GAJ department's shared
    ``gaj-hzyy``, planned at admission) and a register-made namespace of its own for SYS-SJJ-002."""
    data = yaml.safe_load((SAMPLES / "cloud_resources.yaml").read_text(encoding="utf-8"))
    actor = svc.Actor("gaj-user", "department_user", frozenset({"GAJ"}))
    with city.transaction() as session:
        ticket_id = svc.create(session, city.audit, actor, data, net=city.settings.net).id
    with city.sessions() as session:
        ticket = session.get(Ticket, ticket_id)
        assert ticket.state == "security_review", ticket.state  # admitted: the plan passed the policy pack
        ticket_plan = json.loads(ticket.plan)
    with city.sessions() as session:
        spec = k8s_spec(session, "SJJ", "TKT-2026-0100", system_id=SJJ, namespace="sjj-lwsj")
        session.rollback()
    own_plan = plan({"k8s": [spec.model_dump()]})
    objects = objects_from_plan(ticket_plan) + objects_from_plan(own_plan)
    kinds = sorted(o["kind"] for o in objects)
    assert kinds.count("Namespace") == 2 and kinds.count("NetworkPolicy") == 5 and kinds.count("RoleBinding") == 2
    return objects


@pytest.fixture
def api(planned: list[dict[str, Any]], tmp_path: Path) -> Iterator[KubeApi]:
    with kube_api(TOKEN, [*cluster_defaults(), *planned], tls_dir=tmp_path / "tls") as server:
        yield server


def settings_for(api: KubeApi, tmp_path: Path, **kw: Any) -> KubernetesSettings:
    return KubernetesSettings(kubeconfig=api.kubeconfig(tmp_path / "kubeconfig", **kw), request_timeout_s=5)


def sysinfo(city: Runtime, system_id: str) -> SystemInfo:
    with city.sessions() as session:
        return system_info(session, system_id)


def results(facts: list[K8sFacts] | None, system: SystemInfo) -> dict[str, Result]:
    ev = Evidence.model_validate({"register": {"system_id": system.id, "department": system.department_code,
                                               "mlps_level": system.mlps_level, "hosting": system.hosting},
                                  "k8s": None if facts is None else [f.model_dump() for f in facts]})
    ctx = CheckContext(level=system.mlps_level, as_of=NOW)
    return {c: REGISTRY[c].fn(ev, ctx).result for c in K8S_CHECKS}


def selectors_asked(api: KubeApi) -> list[str]:
    return [parse_qs(urlsplit(p).query)["labelSelector"][0] for _, p, _ in api.requests
            if urlsplit(p).path == "/api/v1/namespaces"]


# --- what Yunshu plans passes --------------------------------------------------------------------------------


def test_the_planned_department_namespace_passes_in_a_full_evaluation(city: Runtime, api: KubeApi,
                                                                       tmp_path: Path) -> None:
    city.settings.kubernetes = settings_for(api, tmp_path)
    try:
        _, data = run_evaluation(city, GAJ_CLOUD, "auditor", probe_targets=[], now=NOW)
    finally:
        city.settings.kubernetes = KubernetesSettings()
    checks = {c["check"]: c["result"] for r in data["requirements"] for c in r["checks"] if c["check"] in K8S_CHECKS}
    assert checks == dict.fromkeys(K8S_CHECKS, "符合")
    detail = data["collected"]["k8s"]
    assert detail["cluster"] == api.url and api.url.startswith("https://")
    assert detail["namespaces"]["gaj-hzyy"]["shared"] is True
    assert sorted(detail["namespaces"]["gaj-hzyy"]["network_policies"]) == ["allow-dns", "allow-ingress-gw",
                                                                             "default-deny"]
    assert {"k8s", "k8s:gaj-hzyy"} <= set(data["evidence"])
    assert len(data["evidence"]["k8s:gaj-hzyy"]["sha256"]) == 64 and api.url in data["evidence"]["k8s"]["source"]
    # the real client asked the real endpoints with the token
    assert selectors_asked(api) == ["yunshu/system-id=SYS-GAJ-008", "yunshu/system-id=shared,yunshu/department=GAJ"]
    paths = {urlsplit(p).path for _, p, ok in api.requests if ok}
    assert {"/apis/networking.k8s.io/v1/namespaces/gaj-hzyy/networkpolicies",
            "/api/v1/namespaces/gaj-hzyy/resourcequotas", "/api/v1/namespaces/gaj-hzyy/limitranges",
            "/apis/rbac.authorization.k8s.io/v1/namespaces/gaj-hzyy/rolebindings",
            "/apis/rbac.authorization.k8s.io/v1/namespaces/gaj-hzyy/roles",
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
            "/apis/rbac.authorization.k8s.io/v1/clusterroles/edit"} <= paths
    assert all(ok for _, _, ok in api.requests)


def test_the_planned_system_namespace_passes(city: Runtime, api: KubeApi, tmp_path: Path) -> None:
    system = sysinfo(city, SJJ)
    facts, provenance, _ = collect_k8s(settings_for(api, tmp_path), system, NOW)
    assert facts is not None and [f.namespace for f in facts] == ["sjj-lwsj"]
    ns = facts[0]
    assert not ns.shared and ns.labels["yunshu/system-id"] == SJJ and ns.pod_security_enforce == "restricted"
    assert ns.quotas and ns.quotas[0].hard["pods"] == "50"
    assert ns.bindings and [(b.role, b.subjects[0].kind) for b in ns.bindings if b.scope == "namespace"] == \
        [("edit", "Group")]
    assert [b.name for b in ns.bindings if b.scope == "cluster"] == []  # the bootstrap cluster-admin is a default
    assert ns.unreadable == {}
    assert results(facts, system) == dict.fromkeys(K8S_CHECKS, C)
    again = collect_k8s(settings_for(api, tmp_path), system, NOW)[1]
    assert again["k8s:sjj-lwsj"].digest == provenance["k8s:sjj-lwsj"].digest  # same objects, same digest


def test_a_local_idc_system_has_no_namespace_there(city: Runtime, api: KubeApi, tmp_path: Path) -> None:
    system = sysinfo(city, GAJ_IDC)
    facts, _, detail = collect_k8s(settings_for(api, tmp_path), system, NOW)
    assert facts == [] and detail["reason"] == "no namespace of the system in the cluster"
    assert selectors_asked(api) == ["yunshu/system-id=SYS-GAJ-006"]  # the department namespace serves clouds only
    assert results(facts, system) == dict.fromkeys(K8S_CHECKS, NA)


# --- what must fail ---------------------------------------------------------------------------------------------


def _no_default_deny(api: KubeApi) -> None:
    api.remove("NetworkPolicy", "default-deny", "sjj-lwsj")


def _allow_all_by_hand(api: KubeApi) -> None:  # no policyTypes: Kubernetes reads it as an Ingress policy
    api.add({"kind": "NetworkPolicy", "metadata": {"name": "allow-all", "namespace": "sjj-lwsj"},
             "spec": {"podSelector": {}, "ingress": [{}]}})


def _no_quota(api: KubeApi) -> None:
    api.remove("ResourceQuota", "yunshu-quota", "sjj-lwsj")


def _cluster_admin_user(api: KubeApi) -> None:
    api.add({"kind": "ClusterRoleBinding", "metadata": {"name": "zhang-san-admin"},
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
             "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "zhang.san"}]})


def _wildcard_role(api: KubeApi) -> None:
    api.add({"kind": "Role", "metadata": {"name": "anything", "namespace": "sjj-lwsj"},
             "rules": [{"apiGroups": [""], "resources": ["*"], "verbs": ["get", "list"]}]})


def _privileged(api: KubeApi) -> None:
    ns = api.get("Namespace", "sjj-lwsj")
    ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] = "privileged"
    api.add(ns)


@pytest.mark.parametrize(("change", "failing", "words"), [
    (_no_default_deny, "k8s.network_default_deny", "no default-deny ingress NetworkPolicy"),
    (_allow_all_by_hand, "k8s.network_default_deny", "policy allow-all allows everything in"),
    (_no_quota, "k8s.namespace_isolation", "no ResourceQuota"),
    (_cluster_admin_user, "k8s.rbac_least_privilege", "ClusterRoleBinding zhang-san-admin grants cluster-admin "
                                                      "(User:zhang.san)"),
    (_wildcard_role, "k8s.rbac_least_privilege", "Role anything has wildcard"),
    (_privileged, "k8s.pod_security", "enforces privileged; level 3 needs restricted"),
], ids=["no-default-deny", "allow-all", "no-quota", "cluster-admin-user", "wildcard-role", "privileged"])
def test_weakened_namespace_fails_its_check(city: Runtime, api: KubeApi, tmp_path: Path, change: Any,
                                            failing: str, words: str) -> None:
    change(api)
    system = sysinfo(city, SJJ)
    facts, _, _ = collect_k8s(settings_for(api, tmp_path), system, NOW)
    got = results(facts, system)
    assert got[failing] is N
    others = {c: r for c, r in got.items() if c != failing and not (failing == "k8s.network_default_deny" and
                                                                    c == "k8s.network_allows_specific")}
    assert set(others.values()) == {C}  # only the weakened property fails
    ev = Evidence.model_validate({"register": {"system_id": SJJ, "department": "SJJ", "mlps_level": 3,
                                               "hosting": "gov_cloud"}, "k8s": [f.model_dump() for f in facts]})
    assert words in REGISTRY[failing].fn(ev, CheckContext(level=3, as_of=NOW)).reason_en


# --- failures are reported, never raised ----------------------------------------------------------------------


def test_unreachable_server(city: Runtime, api: KubeApi, tmp_path: Path) -> None:
    system = sysinfo(city, SJJ)
    gone = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    facts, provenance, detail = collect_k8s(settings_for(api, tmp_path, server=gone), system, NOW)
    assert time.monotonic() - started < 5
    assert facts is None
    assert detail["reason"].startswith(f"the API server {gone} is unreachable")
    assert "无法连接 API 服务器" in detail["reason_zh"]
    assert "unreachable" in provenance["k8s"].source and provenance["k8s"].digest
    assert results(facts, system) == dict.fromkeys(K8S_CHECKS, PENDING)


def test_wrong_token_is_a_clear_401(city: Runtime, api: KubeApi, tmp_path: Path) -> None:
    system = sysinfo(city, SJJ)
    facts, provenance, detail = collect_k8s(settings_for(api, tmp_path, token="stolen-or-expired"), system, NOW)
    assert facts is None
    assert "refused the credentials (401 Unauthorized" in detail["reason"]
    assert "401" in provenance["k8s"].source
    assert api.requests and not any(ok for _, _, ok in api.requests)  # the server saw the wrong token
    assert results(facts, system) == dict.fromkeys(K8S_CHECKS, PENDING)


def test_forbidden_cluster_bindings_leave_rbac_pending(city: Runtime, api: KubeApi, tmp_path: Path) -> None:
    api.forbidden = {"clusterrolebindings"}
    system = sysinfo(city, SJJ)
    facts, _, detail = collect_k8s(settings_for(api, tmp_path), system, NOW)
    assert facts is not None and facts[0].bindings is None
    reason = facts[0].unreadable["clusterrolebindings"]
    assert reason.startswith("the collector's account may not read this (403 Forbidden)") and "clusterrolebindings" \
        in reason
    assert detail["namespaces"]["sjj-lwsj"]["unreadable"] == facts[0].unreadable
    got = results(facts, system)
    assert got.pop("k8s.rbac_least_privilege") is PENDING and set(got.values()) == {C}


def test_forbidden_namespaces_fail_the_whole_read(city: Runtime, api: KubeApi, tmp_path: Path) -> None:
    api.forbidden = {"namespaces"}
    facts, _, detail = collect_k8s(settings_for(api, tmp_path), sysinfo(city, SJJ), NOW)
    assert facts is None and "403 Forbidden" in detail["reason"] and 'resource "namespaces"' in detail["reason"]


def test_context_is_chosen_from_the_kubeconfig(city: Runtime, api: KubeApi, tmp_path: Path) -> None:
    path = api.kubeconfig(tmp_path / "kubeconfig", token="wrong")  # current-context: the wrong token
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    config["users"].append({"name": "auditor", "user": {"token": TOKEN}})
    config["contexts"].append({"name": "audit", "context": {"cluster": "test", "user": "auditor"}})
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    system = sysinfo(city, SJJ)
    assert collect_k8s(KubernetesSettings(kubeconfig=path), system, NOW)[0] is None
    facts = collect_k8s(KubernetesSettings(kubeconfig=path, context="audit"), system, NOW)[0]
    assert facts is not None and [f.namespace for f in facts] == ["sjj-lwsj"]
    nope = collect_k8s(KubernetesSettings(kubeconfig=path, context="nope"), system, NOW)
    assert nope[0] is None and "configuration is unusable" in nope[2]["reason"] and "nope" in nope[2]["reason"]


def test_unusable_configuration(city: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    system = sysinfo(city, SJJ)
    facts, provenance, detail = collect_k8s(KubernetesSettings(kubeconfig=tmp_path / "absent"), system, NOW)
    assert facts is None and "does not exist" in detail["reason"] and "k8s" in provenance
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    facts, _, detail = collect_k8s(KubernetesSettings(in_cluster=True), system, NOW)
    assert facts is None and detail["config"] == "in-cluster service account"
    assert "configuration is unusable" in detail["reason"]


def test_not_configured_by_default(city: Runtime) -> None:
    assert not city.settings.kubernetes.configured and not city.settings.kubernetes.in_use
    collected = collect(city, SJJ, now=NOW, probe_targets=[])
    assert collected.evidence.k8s == []  # none declared in use: the Kubernetes checks do not apply
    assert collected.details["k8s"]["configured"] is False
    assert "none declared in use" in collected.evidence.provenance["k8s"].source
    system = sysinfo(city, SJJ)
    assert results([], system) == dict.fromkeys(K8S_CHECKS, NA)
    declared = collect_k8s(KubernetesSettings(in_use=True), system, NOW)
    assert declared[0] is None and "declared in use" in declared[1]["k8s"].source
    assert results(None, system) == dict.fromkeys(K8S_CHECKS, PENDING)  # a cloud system: nobody looked
    assert results(None, sysinfo(city, GAJ_IDC)) == dict.fromkeys(K8S_CHECKS, NA)


# --- settings ---------------------------------------------------------------------------------------------------


def test_settings_section(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YUNSHU_CONFIG", str(tmp_path / "none.yaml"))
    monkeypatch.setenv("YUNSHU_KUBERNETES__KUBECONFIG", "/etc/yunshu/kubeconfig")
    monkeypatch.setenv("YUNSHU_KUBERNETES__CONTEXT", "gov-cloud")
    monkeypatch.setenv("YUNSHU_KUBERNETES__REQUEST_TIMEOUT_S", "3.5")
    k = Settings(home=tmp_path).kubernetes
    assert (k.kubeconfig, k.context, k.in_cluster, k.request_timeout_s) == (Path("/etc/yunshu/kubeconfig"),
                                                                           "gov-cloud", False, 3.5)
    assert k.configured and not KubernetesSettings().configured and KubernetesSettings(in_cluster=True).configured
    with pytest.raises(ValidationError, match="either kubeconfig or in_cluster"):
        KubernetesSettings(kubeconfig=Path("/k"), in_cluster=True)
    with pytest.raises(ValidationError, match="context needs kubeconfig"):
        KubernetesSettings(context="x")
    with pytest.raises(ValidationError, match="request_timeout_s"):
        KubernetesSettings(request_timeout_s=0)
