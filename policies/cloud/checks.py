"""The checks of the cloud policy pack as plain functions over planned resources (type + camelCase props).

Resource checks: ``check(resource, params) -> list[str]`` (messages). Stack checks:
``check(resources, params) -> list[tuple[PlannedResource | None, str]]``. Messages are zh-CN first, then English.
They are registered in :data:`CHECKS` under the name ``rules.yaml`` uses.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from policies.cloud.models import PlannedResource

SECGROUP_RULE = "openstack:networking/secGroupRule:SecGroupRule"
NETWORK = "openstack:networking/network:Network"
SUBNET = "openstack:networking/subnet:Subnet"
VOLUME = "openstack:blockstorage/volume:Volume"
VOLUME_TYPE = "openstack:blockstorage/volumeTypeV3:VolumeTypeV3"
FLOATING_IP = "openstack:networking/floatingIp:FloatingIp"
NAMESPACE = "kubernetes:core/v1:Namespace"
NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
RESOURCE_QUOTA = "kubernetes:core/v1:ResourceQuota"
K8S_LABEL_PREFIX = "yunshu/"

Finding = tuple[PlannedResource | None, str]
ResourceCheck = Callable[[PlannedResource, Mapping[str, Any]], list[str]]
StackCheck = Callable[[Sequence[PlannedResource], Mapping[str, Any]], list[Finding]]


def gov_labels(resource: PlannedResource, k8s_prefix: str = K8S_LABEL_PREFIX) -> dict[str, str]:
    """The government labels a resource carries, from its tag list, metadata map or Kubernetes labels."""
    props = resource.props
    out: dict[str, str] = {}
    for tag in props.get("tags") or []:
        if isinstance(tag, str) and "=" in tag:
            key, _, value = tag.partition("=")
            out[key] = value
    meta = props.get("metadata")
    if isinstance(meta, Mapping):
        if resource.type.startswith("kubernetes:"):
            for key, value in (meta.get("labels") or {}).items():
                if key.startswith(k8s_prefix):
                    out[key[len(k8s_prefix):].replace("-", "_")] = str(value)
        else:
            out.update({str(k): str(v) for k, v in meta.items()})
    return out


def mlps_level(resource: PlannedResource) -> int | None:
    """The 等保 level the resource is labelled with, or None when absent or not a number."""
    value = gov_labels(resource).get("mlps_level")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


# --- YS-CLOUD-001 -----------------------------------------------------------------------------------------------

def _open_to_any(props: Mapping[str, Any]) -> str | None:
    """The source text if the rule admits any address (0.0.0.0/0, ::/0, or no remote at all), else None."""
    prefix = props.get("remoteIpPrefix")
    if not prefix:
        return None if props.get("remoteGroupId") or props.get("remoteAddressGroupId") else "any"
    try:
        net = ipaddress.ip_network(str(prefix), strict=False)
    except ValueError:
        return None
    return str(net) if net.prefixlen == 0 else None


def _sensitive_in(low: int, high: int, params: Mapping[str, Any]) -> str | None:
    ports: Mapping[Any, str] = params.get("ports", {})
    hits = sorted(int(p) for p in ports if low <= int(p) <= high)
    return ", ".join(f"{p} ({ports.get(p, ports.get(str(p), ''))})" for p in hits) or None


def _open_network_policy_ingress(resource: PlannedResource, params: Mapping[str, Any]) -> list[str]:
    """NetworkPolicy ingress rules admitting any address (ipBlock /0, or no ``from`` at all) to sensitive ports."""
    found = []
    for rule in (resource.props.get("spec") or {}).get("ingress") or []:
        peers = rule.get("from") or []
        open_cidrs = [p["ipBlock"]["cidr"] for p in peers if (p.get("ipBlock") or {}).get("cidr", "").endswith("/0")]
        if peers and not open_cidrs:
            continue
        source = ", ".join(open_cidrs) or "any"
        for port in rule.get("ports") or [{}]:
            number = port.get("port")
            if number is not None and not isinstance(number, int | float):
                continue  # a named port: its number is not known here
            low = int(number) if number is not None else 1
            high = int(port.get("endPort") or (low if number is not None else 65535))
            named = _sensitive_in(low, high, params)
            if named:
                found.append(f"NetworkPolicy {resource.name} 对 {source} 开放了 {named} / NetworkPolicy "
                             f"{resource.name} opens {named} to {source}")
    return found


def no_open_admin_or_database_ingress(resource: PlannedResource, params: Mapping[str, Any]) -> list[str]:
    """Ingress security-group rules and NetworkPolicy ingress open to any source must not cover a sensitive port."""
    props = resource.props
    if resource.type == NETWORK_POLICY:
        return _open_network_policy_ingress(resource, params)
    if resource.type != SECGROUP_RULE or props.get("direction") != "ingress":
        return []
    source = _open_to_any(props)
    protocol = str(props.get("protocol") or "any").lower()
    if source is None or protocol not in ("tcp", "udp", "any", "6", "17"):
        return []
    low = int(props.get("portRangeMin") or 1)
    high = int(props.get("portRangeMax") or (low if props.get("portRangeMin") else 65535))
    named = _sensitive_in(low, high, params)
    if named is None:
        return []
    return [f"安全组规则 {resource.name} 对 {source} 开放了 {named} / security-group rule {resource.name} opens "
            f"{named} to {source}"]


# --- YS-CLOUD-002 -----------------------------------------------------------------------------------------------

def _encrypted_type(resource: PlannedResource) -> bool:
    specs = resource.props.get("extraSpecs") or {}
    return str(specs.get("yunshu:encrypted", "")).lower() == "true"


def volumes_encrypted_from_level_3(resources: Sequence[PlannedResource], params: Mapping[str, Any]) -> list[Finding]:
    """Volumes labelled level ≥ min_level use an encrypted type (planned and declared, or known to the platform)."""
    min_level = int(params.get("min_level", 3))
    planned = [r for r in resources if r.type == VOLUME_TYPE and _encrypted_type(r)]
    names = {str(r.props.get("name")) for r in planned} | set(params.get("encrypted_volume_types", []))
    urns = {r.urn for r in planned}
    findings: list[Finding] = []
    for vol in resources:
        level = mlps_level(vol) if vol.type == VOLUME else None
        if level is None or level < min_level:
            continue
        vtype = vol.props.get("volumeType")
        if vtype in names or (not vtype and urns.intersection(vol.dependencies)):
            continue
        shown = vtype or "默认类型 / default type"
        findings.append((vol, f"三级及以上（{level} 级）云硬盘 {vol.name} 使用未加密的卷类型 {shown} / level-{level} "
                              f"volume {vol.name} uses volume type {vtype or '(default)'}, which is not encrypted"))
    return findings


# --- YS-CLOUD-003 -----------------------------------------------------------------------------------------------

def _refers_to(subnet: PlannedResource, network: PlannedResource) -> bool:
    net_id = subnet.props.get("networkId")
    if net_id and network.id and net_id == network.id:
        return True
    return not net_id and network.urn in subnet.dependencies


def networks_dual_stack(resources: Sequence[PlannedResource], params: Mapping[str, Any]) -> list[Finding]:
    """Every planned network has an IPv4 and an IPv6 subnet."""
    subnets = [r for r in resources if r.type == SUBNET]
    findings: list[Finding] = []
    for net in (r for r in resources if r.type == NETWORK):
        versions = {int(float(s.props.get("ipVersion") or 4)) for s in subnets if _refers_to(s, net)}
        missing = [f"IPv{v}" for v in (4, 6) if v not in versions]
        if missing:
            findings.append((net, f"网络 {net.name} 缺少 {' 和 '.join(missing)} 子网，不是双栈 / network {net.name} "
                                  f"has no {' and no '.join(missing)} subnet: not dual-stack"))
    return findings


# --- YS-CLOUD-004 -----------------------------------------------------------------------------------------------

def required_tags(resource: PlannedResource, params: Mapping[str, Any]) -> list[str]:
    """Taggable resources carry every required label with a valid value."""
    taggable = (resource.type in params.get("tag_list_types", []) or resource.type in params.get("metadata_types", [])
                or resource.type in params.get("k8s_types", []))
    if not taggable:
        return []
    labels = gov_labels(resource, params.get("k8s_label_prefix", K8S_LABEL_PREFIX))
    problems = [f"缺少 {k} / missing {k}" for k in params.get("keys", []) if not labels.get(k)]
    if labels.get("mlps_level") and labels["mlps_level"] not in ("1", "2", "3", "4"):
        problems.append(f"mlps_level={labels['mlps_level']} 不在 1–4 / not in 1–4")
    classes = params.get("data_classes")
    if classes and labels.get("data_class") and labels["data_class"] not in classes:
        problems.append(f"data_class={labels['data_class']} 无效 / invalid")
    if not problems:
        return []
    return [f"资源 {resource.name} 标签不全：{'；'.join(problems)} / resource {resource.name}: labels incomplete"]


# --- YS-CLOUD-005 -----------------------------------------------------------------------------------------------

def _namespace_of(resource: PlannedResource) -> str | None:
    meta = resource.props.get("metadata") or {}
    return meta.get("namespace")


def _selects_all(selector: Any) -> bool:
    if selector is None:
        return False
    return not (selector.get("matchLabels") or selector.get("matchExpressions"))


def is_default_deny(policy: PlannedResource, policy_types: Sequence[str]) -> bool:
    """A NetworkPolicy selecting every pod, listing ``policy_types`` and allowing nothing."""
    spec = policy.props.get("spec") or {}
    return (_selects_all(spec.get("podSelector")) and set(policy_types) <= set(spec.get("policyTypes") or [])
            and not spec.get("ingress") and not spec.get("egress"))


def namespaces_default_deny_and_quota(resources: Sequence[PlannedResource],
                                      params: Mapping[str, Any]) -> list[Finding]:
    """Each namespace has a default-deny NetworkPolicy and a ResourceQuota with the required limits."""
    policy_types = params.get("policy_types", ["Ingress", "Egress"])
    quota_keys = params.get("quota_keys", [])
    findings: list[Finding] = []
    for ns in (r for r in resources if r.type == NAMESPACE):
        name = (ns.props.get("metadata") or {}).get("name")
        if not any(r.type == NETWORK_POLICY and _namespace_of(r) == name and is_default_deny(r, policy_types)
                   for r in resources):
            findings.append((ns, f"命名空间 {name} 没有默认拒绝（{'/'.join(policy_types)}）的 NetworkPolicy / "
                                 f"namespace {name} has no default-deny NetworkPolicy for {', '.join(policy_types)}"))
        quotas = [r for r in resources if r.type == RESOURCE_QUOTA and _namespace_of(r) == name]
        hard = {k for q in quotas for k in ((q.props.get("spec") or {}).get("hard") or {})}
        missing = [k for k in quota_keys if k not in hard]
        if not quotas:
            findings.append((ns, f"命名空间 {name} 没有 ResourceQuota / namespace {name} has no ResourceQuota"))
        elif missing:
            findings.append((ns, f"命名空间 {name} 的配额缺少 {', '.join(missing)} / namespace {name}: quota lacks "
                                 f"{', '.join(missing)}"))
    return findings


# --- YS-CLOUD-006 -----------------------------------------------------------------------------------------------

def floating_ip_has_exposure_ticket(resource: PlannedResource, params: Mapping[str, Any]) -> list[str]:
    """A floating IP carries the tag naming its approved internet-exposure ticket."""
    if resource.type != FLOATING_IP:
        return []
    tag = params.get("tag", "internet_exposure")
    if gov_labels(resource).get(tag):
        return []
    return [f"浮动 IP {resource.name} 没有获批的互联网暴露工单（标签 {tag}）/ floating IP {resource.name} has no "
            f"approved internet-exposure ticket (tag {tag})"]


# --- YS-CLOUD-007 -----------------------------------------------------------------------------------------------

def namespace_pod_security(resource: PlannedResource, params: Mapping[str, Any]) -> list[str]:
    """Namespaces enforce a Pod Security Standard; ``restricted`` from ``min_level``."""
    if resource.type != NAMESPACE:
        return []
    labels = (resource.props.get("metadata") or {}).get("labels") or {}
    enforced = labels.get("pod-security.kubernetes.io/enforce")
    level = mlps_level(resource)
    if enforced is None:
        return [f"命名空间 {resource.name} 未设置 Pod 安全标准 / namespace {resource.name} enforces no Pod Security "
                "Standard"]
    if level is not None and level >= int(params.get("min_level", 3)) and enforced != "restricted":
        return [f"{level} 级命名空间 {resource.name} 强制的是 {enforced}，应为 restricted / level-{level} namespace "
                f"{resource.name} enforces {enforced}, not restricted"]
    return []


CHECKS: dict[str, ResourceCheck | StackCheck] = {
    "no_open_admin_or_database_ingress": no_open_admin_or_database_ingress,
    "volumes_encrypted_from_level_3": volumes_encrypted_from_level_3,
    "networks_dual_stack": networks_dual_stack,
    "required_tags": required_tags,
    "namespaces_default_deny_and_quota": namespaces_default_deny_and_quota,
    "floating_ip_has_exposure_ticket": floating_ip_has_exposure_ticket,
    "namespace_pod_security": namespace_pod_security,
}
