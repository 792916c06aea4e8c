"""Cloud components under Pulumi mocks (plan mode): dual stack, quotas, baselines, tags, encryption, floating IPs
only with approved exposure, Kubernetes default deny; the plan output; the Automation API refusal without a CLI."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from infra.cloud import automation
from infra.cloud.baselines import Baselines, load_baselines
from infra.cloud.plan import NOTICE, PlanError, evaluate_program, plan
from infra.cloud.specs import CloudRequest
from infra.cloud.tags import K8S_PREFIX, TAG_KEYS
from policies.cloud.catalog import default_catalog
from policies.cloud.checks import gov_labels
from policies.cloud.models import PlannedResource

TICKET = "TKT-2026-0001"
LABELS = {"department": "GAJ", "ticket_id": TICKET, "data_class": "important"}
SG_RULE = "openstack:networking/secGroupRule:SecGroupRule"


def tenant(level: int = 3, **extra: Any) -> dict[str, Any]:
    return {**LABELS, "mlps_level": level, "ipv4_cidr": "198.18.64.0/24", "ipv6_cidr": "2001:db8:4::/64",
            "dns_nameservers": ["198.18.0.53", "2001:db8:1000::53"], "management_cidrs": ["198.18.4.0/22"],
            "soc_collectors": ["198.18.5.10/32"], **extra}


def system(level: int = 3, **extra: Any) -> dict[str, Any]:
    return {**LABELS, "mlps_level": level, "system_id": "SYS-GAJ-001",
            "instances": [{"name": "web", "flavor": "m1.medium", "image": "kylin-v10", "count": 2, "role": "web"},
                          {"name": "db", "flavor": "m1.large", "image": "kylin-v10", "role": "db"}],
            "volumes": [{"name": "data", "size_gb": 100, "attach_to": "db"}, {"name": "scratch", "size_gb": 10}],
            "ingress": [{"protocol": "tcp", "port_min": 443, "remote_cidr": "0.0.0.0/0"}], **extra}


def namespace(level: int = 3, **extra: Any) -> dict[str, Any]:
    return {**LABELS, "mlps_level": level, "namespace": "gaj-apps", "group": "dept-gaj",
            "allows": [{"name": "allow-web", "pod_selector": {"app": "web"},
                        "namespace_labels": {"kubernetes.io/metadata.name": "ingress"}, "ports": [{"port": 8080}]}],
            **extra}


EXPOSURE = {"ticket_id": "TKT-2026-0002", "approved_by": "security-lead", "instance": "web", "pool": "public"}


def run(request: dict[str, Any]) -> list[PlannedResource]:
    resources, _ = evaluate_program(CloudRequest.model_validate(request))
    return resources


def of_type(resources: list[PlannedResource], suffix: str) -> list[PlannedResource]:
    return [r for r in resources if r.type.endswith(suffix)]


@pytest.fixture(scope="module")
def full() -> list[PlannedResource]:
    return run({"tenant": tenant(), "systems": [system(internet_exposure={**EXPOSURE, "approved": True})],
                "k8s": [namespace()]})


# --- DepartmentTenant -------------------------------------------------------------------------------------------

def test_tenant_network_is_dual_stack_with_the_ipam_64(full: list[PlannedResource]) -> None:
    (net,) = of_type(full, ":Network")
    subnets = {int(s.props["ipVersion"]): s for s in of_type(full, ":Subnet")}
    assert set(subnets) == {4, 6}
    assert all(s.props["networkId"] == net.id for s in subnets.values())
    assert subnets[4].props["cidr"] == "198.18.64.0/24"
    v6 = subnets[6].props
    assert v6["cidr"] == "2001:db8:4::/64"
    assert v6["gatewayIp"] == "2001:db8:4::1"
    assert v6["ipv6AddressMode"] == v6["ipv6RaMode"] == "dhcpv6-stateful"
    interfaces = of_type(full, ":RouterInterface")
    assert sorted(i.props["subnetId"] for i in interfaces) == sorted(s.id for s in subnets.values())


def test_tenant_quotas_follow_the_spec(tmp_path: Path) -> None:
    quota = {"cores": 8, "ram_mb": 16384, "instances": 4, "volumes": 6, "gigabytes": 500, "floating_ips": 1}
    resources = run({"tenant": tenant(quota=quota)})
    (project,) = of_type(resources, ":Project")
    (compute,) = of_type(resources, ":QuotaSetV2")
    (network,) = of_type(resources, ":QuotaV2")
    (block,) = of_type(resources, ":QuoteSetV3")
    assert (compute.props["cores"], compute.props["ram"], compute.props["instances"]) == (8, 16384, 4)
    assert (block.props["volumes"], block.props["gigabytes"]) == (6, 500)
    assert network.props["floatingip"] == 1
    assert {q.props["projectId"] for q in (compute, network, block)} == {project.id}


def test_floating_ip_quota_is_zero_unless_asked() -> None:
    (network,) = of_type(run({"tenant": tenant()}), ":QuotaV2")
    assert network.props["floatingip"] == 0


def _rules(resources: list[PlannedResource], group_suffix: str) -> list[dict[str, Any]]:
    (sg,) = [r for r in of_type(resources, ":SecGroup") if r.name.endswith(group_suffix)]
    return [r.props for r in of_type(resources, ":SecGroupRule") if r.props["securityGroupId"] == sg.id]


def test_baseline_groups_depend_on_the_level() -> None:
    low, high = run({"tenant": tenant(level=2)}), run({"tenant": tenant(level=3)})
    (sg_low,), (sg_high,) = of_type(low, ":SecGroup"), of_type(high, ":SecGroup")
    assert sg_low.props["deleteDefaultRules"] is False
    assert sg_high.props["deleteDefaultRules"] is True  # level 3: the allow-all egress defaults go
    assert not [r for r in _rules(low, "baseline") if r["direction"] == "egress"]
    egress = [r for r in _rules(high, "baseline") if r["direction"] == "egress"]
    assert {"198.18.5.10/32"} <= {r["remoteIpPrefix"] for r in egress}  # logs to the SOC collectors
    assert all(ipaddress.ip_network(r["remoteIpPrefix"]).prefixlen > 0 for r in egress)
    for rules in (_rules(low, "baseline"), _rules(high, "baseline")):
        ssh = [r for r in rules if r.get("portRangeMin") == 22]
        assert [r["remoteIpPrefix"] for r in ssh] == ["198.18.4.0/22"]
        assert all(r["remoteIpPrefix"] not in ("0.0.0.0/0", "::/0") for r in rules if r["direction"] == "ingress")


def test_no_management_zone_means_no_ssh_at_all() -> None:
    rules = _rules(run({"tenant": tenant(management_cidrs=[])}), "baseline")
    assert rules and not [r for r in rules if r.get("portRangeMin") == 22]


def test_baselines_file_is_validated(tmp_path: Path) -> None:
    bad = tmp_path / "b.yaml"
    bad.write_text("profiles:\n  - name: x\n    levels: [1, 2, 3, 4]\n    groups:\n      - name: g\n"
                   "        description: d\n        restrict_egress: false\n        rules:\n"
                   "          - {direction: ingress, protocol: tcp, ports: [22, 22], remote: any}\n", encoding="utf-8")
    with pytest.raises(ValueError, match="may not open ingress from any address"):
        load_baselines(bad)
    with pytest.raises(ValueError, match="cover levels 1–4"):
        Baselines.model_validate({"profiles": [{"name": "x", "levels": [1, 2], "groups": []}]})


# --- SystemStack -------------------------------------------------------------------------------------------------

def test_level_3_volumes_use_the_encrypted_type(full: list[PlannedResource]) -> None:
    (vtype,) = of_type(full, ":VolumeTypeV3")
    assert vtype.props["extraSpecs"]["yunshu:encrypted"] == "true"
    assert vtype.props["isPublic"] is False
    (access,) = of_type(full, ":VolumeTypeAccessV3")
    assert access.props["volumeTypeId"] == vtype.id
    volumes = of_type(full, ":Volume")
    assert len(volumes) == 2 and {v.props["volumeType"] for v in volumes} == {vtype.props["name"]}


def test_level_2_volumes_are_plain_and_sm4_is_selectable() -> None:
    low = run({"tenant": tenant(level=2), "systems": [system(level=2)]})
    assert not of_type(low, ":VolumeTypeV3")
    assert all("volumeType" not in v.props for v in of_type(low, ":Volume"))
    sm4 = run({"tenant": tenant(), "systems": [system(encryption={"cipher": "sm4-xts-plain64"})]})
    assert of_type(sm4, ":VolumeTypeV3")[0].props["extraSpecs"]["yunshu:encryption_cipher"] == "sm4-xts-plain64"


def test_instances_ports_and_requested_rules(full: list[PlannedResource]) -> None:
    instances, ports = of_type(full, ":Instance"), of_type(full, ":Port")
    assert sorted(i.props["name"] for i in instances) == ["sys-gaj-001-db-1", "sys-gaj-001-web-1",
                                                          "sys-gaj-001-web-2"]
    assert {i.props["networks"][0]["port"] for i in instances} == {p.id for p in ports}
    (db,) = [i for i in instances if i.props["name"].endswith("db-1")]
    (attach,) = of_type(full, ":VolumeAttach")
    assert attach.props["instanceId"] == db.id
    (app_sg,) = [s for s in of_type(full, ":SecGroup") if s.props["name"] == "sys-gaj-001-app"]
    requested = [r.props for r in of_type(full, SG_RULE) if r.props["securityGroupId"] == app_sg.id]
    assert requested == [{"direction": "ingress", "ethertype": "IPv4", "remoteIpPrefix": "0.0.0.0/0",
                          "protocol": "tcp", "portRangeMin": 443, "portRangeMax": 443,
                          "securityGroupId": app_sg.id, "tenantId": requested[0]["tenantId"],
                          "description": f"requested ticket={TICKET}"}]
    baseline_ids = {s.id for s in of_type(full, ":SecGroup")}
    assert all(set(p.props["securityGroupIds"]) == baseline_ids for p in ports)


def test_floating_ip_only_with_approved_exposure(full: list[PlannedResource]) -> None:
    (fip,) = of_type(full, ":FloatingIp")
    (web_port,) = [p for p in of_type(full, ":Port") if p.props["name"] == "sys-gaj-001-web-1"]
    assert fip.props["portId"] == web_port.id and fip.props["pool"] == "public"
    assert "internet_exposure=TKT-2026-0002" in fip.props["tags"]
    for exposure in (None, {**EXPOSURE, "approved": False}):
        request = CloudRequest.model_validate({"tenant": tenant(), "systems": [system(internet_exposure=exposure)]})
        resources, log = evaluate_program(request)
        assert not of_type(resources, ":FloatingIp")
        assert any("not approved" in line for line in log) == (exposure is not None)


def test_system_on_an_existing_tenant() -> None:
    resources = run({"systems": [system(project_id="p-123", network_id="n-456", security_group_ids=["sg-base"])]})
    assert not of_type(resources, ":Project")
    assert {p.props["networkId"] for p in of_type(resources, ":Port")} == {"n-456"}
    assert all("sg-base" in p.props["securityGroupIds"] for p in of_type(resources, ":Port"))
    with pytest.raises(ValidationError, match="project_id and network_id"):
        CloudRequest.model_validate({"systems": [system()]})


# --- K8sTenant ---------------------------------------------------------------------------------------------------

def test_namespace_pod_security_quota_limits(full: list[PlannedResource]) -> None:
    (ns,) = of_type(full, ":Namespace")
    labels = ns.props["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    (quota,) = of_type(full, ":ResourceQuota")
    assert quota.props["metadata"]["namespace"] == "gaj-apps"
    assert quota.props["spec"]["hard"]["pods"] == "50" and quota.props["spec"]["hard"]["services.nodeports"] == "0"
    (limits,) = of_type(full, ":LimitRange")
    assert limits.props["spec"]["limits"][0]["default"] == {"cpu": "500m", "memory": "512Mi"}
    low = of_type(run({"k8s": [namespace(level=2)]}), ":Namespace")[0]
    assert low.props["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "baseline"


def test_default_deny_plus_requested_allows(full: list[PlannedResource]) -> None:
    policies = {p.props["metadata"]["name"]: p.props["spec"] for p in of_type(full, ":NetworkPolicy")}
    assert set(policies) == {"default-deny", "allow-dns", "allow-web"}
    assert policies["default-deny"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    web = policies["allow-web"]
    assert web["podSelector"] == {"matchLabels": {"app": "web"}} and web["policyTypes"] == ["Ingress"]
    assert web["ingress"][0]["ports"] == [{"port": 8080, "protocol": "TCP"}]
    no_dns = of_type(run({"k8s": [namespace(allow_dns=False, allows=[])]}), ":NetworkPolicy")
    assert [p.props["metadata"]["name"] for p in no_dns] == ["default-deny"]


def test_role_binding_for_the_department_group(full: list[PlannedResource]) -> None:
    (binding,) = of_type(full, ":RoleBinding")
    assert binding.props["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                        "name": "edit"}
    assert binding.props["subjects"] == [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group",
                                          "name": "dept-gaj"}]
    assert binding.props["metadata"]["namespace"] == "gaj-apps"


# --- every resource ---------------------------------------------------------------------------------------------

def test_every_taggable_resource_carries_the_five_labels(full: list[PlannedResource]) -> None:
    expected = {"department": "GAJ", "mlps_level": "3", "data_class": "important", "ticket_id": TICKET}
    params = default_catalog().get("YS-CLOUD-004").params
    assert list(params["keys"]) == list(TAG_KEYS) and params["k8s_label_prefix"] == K8S_PREFIX
    taggable = set(params["tag_list_types"]) | set(params["metadata_types"]) | set(params["k8s_types"])
    checked = [r for r in full if r.type in taggable]
    assert len(checked) == 23  # project, network, 2 subnets, router, 2 groups, 3 ports + 3 instances, 2 volumes,
    #                             floating IP, 7 Kubernetes objects
    for resource in checked:
        labels = gov_labels(resource)
        assert {k: labels.get(k) for k in expected} == expected, resource.name
        owner = "SYS-GAJ-001" if "system-" in resource.name else "shared"
        assert labels["system_id"] == owner, resource.name
    untagged = {r.type for r in full if r.custom and r.type not in taggable}
    assert untagged <= {SG_RULE, "openstack:networking/routerInterface:RouterInterface",
                        "openstack:compute/quotaSetV2:QuotaSetV2", "openstack:networking/quotaV2:QuotaV2",
                        "openstack:blockstorage/quoteSetV3:QuoteSetV3", "openstack:compute/volumeAttach:VolumeAttach",
                        "openstack:blockstorage/volumeTypeV3:VolumeTypeV3",
                        "openstack:blockstorage/volumeTypeAccessV3:VolumeTypeAccessV3"}  # no tag field


def test_every_resource_has_a_component_parent(full: list[PlannedResource]) -> None:
    components = {r.urn: r.type for r in full if not r.custom}
    assert sorted(components.values()) == ["yunshu:cloud:DepartmentTenant", "yunshu:cloud:K8sTenant",
                                           "yunshu:cloud:SystemStack"]
    assert all(r.parent in components for r in full if r.custom)


# --- specs ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("request_data", "message"), [
    ({"tenant": tenant(ipv6_cidr="2001:db8:4::/56")}, "must be a /64"),
    ({"tenant": tenant(ipv4_cidr="2001:db8::/64")}, "not an IPv4 prefix"),
    ({"tenant": tenant(mlps_level=5)}, "mlps_level"),
    ({"tenant": tenant(), "systems": [system(ingress=[{"protocol": "tcp", "remote_cidr": "10.0.0.0/8"}])]},
     "needs port_min"),
    ({"tenant": tenant(), "systems": [system(internet_exposure={**EXPOSURE, "approved": True, "instance": "x"})]},
     "not an instance of the system"),
    ({"tenant": tenant(), "k8s": [namespace(department="RSJ")]}, "one request serves one department"),
    ({"k8s": [namespace(namespace="Bad_Name")]}, "namespace"),
    ({}, "asks for nothing"),
])
def test_bad_specs_are_named(request_data: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        CloudRequest.model_validate(request_data)


# --- plan output ------------------------------------------------------------------------------------------------

def test_plan_output_is_labelled_and_shaped() -> None:
    out = plan({"tenant": tenant(), "systems": [system()], "k8s": [namespace()]})
    assert out["mode"] == "plan" and out["notice"] == NOTICE and out["applied"] is False
    assert "nothing applied" in out["notice"] and "未实际执行" in out["notice"]
    assert out["stack"] == "gaj" and out["department"] == "GAJ"
    assert json.loads(json.dumps(out, ensure_ascii=False)) == out  # the CLI prints it as JSON
    assert out["request"]["systems"][0]["system_id"] == "SYS-GAJ-001"
    assert out["summary"]["resources"] == sum(1 for r in out["resources"] if r["custom"])
    assert out["summary"]["by_type"]["openstack:networking/subnet:Subnet"] == 2
    first = out["resources"][0]
    assert set(first) == {"type", "name", "urn", "custom", "parent", "properties"}
    assert {r["parent"] for r in out["resources"] if r["custom"]} == {"tenant-gaj", "system-sys-gaj-001",
                                                                      "k8s-gaj-apps"}
    assert out["policy"]["passed"] is True and out["admissible"] is True
    assert [r["rule_id"] for r in out["policy"]["results"]] == [r.id for r in default_catalog().rules]


def test_plan_reports_policy_violations() -> None:
    bad = system(ingress=[{"protocol": "tcp", "port_min": 22, "remote_cidr": "0.0.0.0/0"},
                          {"protocol": "tcp", "port_min": 5000, "port_max": 6000, "remote_cidr": "::/0"}])
    out = plan({"tenant": tenant(), "systems": [bad]})
    assert out["admissible"] is False and out["applied"] is False
    (rule,) = [r for r in out["policy"]["results"] if r["rule_id"] == "YS-CLOUD-001"]
    assert len(rule["violations"]) == 2
    assert any("22 (SSH)" in v["message"] for v in rule["violations"])
    assert any("5432 (PostgreSQL)" in v["message"] for v in rule["violations"])


def test_plan_flags_an_open_kubernetes_allow() -> None:
    allow = {"name": "allow-db", "pod_selector": {"app": "db"}, "cidrs": ["0.0.0.0/0"], "ports": [{"port": 5432}]}
    out = plan({"k8s": [namespace(allows=[allow])]})
    (rule,) = [r for r in out["policy"]["results"] if r["rule_id"] == "YS-CLOUD-001"]
    assert [v["resource"] for v in rule["violations"]] == ["k8s-gaj-apps-allow-db"]
    assert out["admissible"] is False


def test_plans_are_independent_and_repeatable() -> None:
    first = plan({"tenant": tenant()})
    other = plan({"k8s": [namespace(department="RSJ", namespace="rsj-apps")]})
    again = plan({"tenant": tenant()})
    assert first["resources"] == again["resources"]
    assert other["stack"] == "rsj" and not [r for r in other["resources"] if r["type"].startswith("openstack")]
    assert all("urn:pulumi:rsj::" in r["urn"] for r in other["resources"])
    one_system = plan({"systems": [system(project_id="p", network_id="n")]})
    assert one_system["stack"] == "gaj-sys-gaj-001"


def test_concurrent_plans_do_not_mix() -> None:
    from concurrent.futures import ThreadPoolExecutor

    requests = [{"tenant": tenant()}, {"k8s": [namespace(department="RSJ", namespace="rsj-apps")]}] * 3
    with ThreadPoolExecutor(max_workers=4) as pool:
        outs = list(pool.map(plan, requests))
    for request, out in zip(requests, outs, strict=True):
        expected = "gaj" if "tenant" in request else "rsj"
        assert out["stack"] == expected and all(f"urn:pulumi:{expected}::" in r["urn"] for r in out["resources"])
    assert outs[0]["resources"] == outs[2]["resources"] == outs[4]["resources"]


def test_program_failure_is_a_plan_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import infra.cloud.plan as plan_module

    def broken(request: CloudRequest) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(plan_module, "program", broken)
    with pytest.raises(PlanError, match="boom"):
        plan({"tenant": tenant()})


# --- Automation API path ----------------------------------------------------------------------------------------

def test_without_the_cli_only_plan_mode(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(automation.shutil, "which", lambda name: None)
    assert automation.pulumi_cli() is None
    for action in ("preview", "up", "destroy", "drift"):
        with pytest.raises(automation.PulumiCliMissing, match="pulumi CLI not installed: plan mode only"):
            automation.run(action, {"tenant": tenant()}, tmp_path)  # type: ignore[arg-type]
    assert not (tmp_path / "pulumi").exists()  # refused before any workspace is made
    out = automation.run("plan", {"tenant": tenant()}, tmp_path)
    assert out["mode"] == "plan" and out["applied"] is False


def test_cli_detection_and_backend(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(automation.shutil, "which", lambda name: "/opt/pulumi/bin/pulumi" if name == "pulumi" else None)
    assert automation.require_cli() == "/opt/pulumi/bin/pulumi"
    url = automation.backend_url(tmp_path)
    assert url == (tmp_path / "pulumi").resolve().as_uri() and url.startswith("file://")
    assert (tmp_path / "pulumi").is_dir()
    with pytest.raises(ValueError, match="unknown action 'apply'"):
        automation.run_action("apply", CloudRequest.model_validate({"tenant": tenant()}), tmp_path, "x")  # type: ignore[arg-type]
