"""K8sTenant: a department namespace with Pod Security labels, ResourceQuota, LimitRange, a default-deny
NetworkPolicy plus the requested allows, and a RoleBinding for the department's group."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from infra.cloud.specs import K8sAllow, K8sPort, K8sSpec
from infra.cloud.tags import k8s_labels

meta = k8s.meta.v1
netv1 = k8s.networking.v1
RBAC_GROUP = "rbac.authorization.k8s.io"


def pod_security_labels(spec: K8sSpec) -> dict[str, str]:
    """Enforce the level's standard; always audit and warn against ``restricted``."""
    return {"pod-security.kubernetes.io/enforce": spec.pod_security,
            "pod-security.kubernetes.io/enforce-version": "latest",
            "pod-security.kubernetes.io/audit": "restricted",
            "pod-security.kubernetes.io/warn": "restricted"}


def _peers(allow: K8sAllow) -> list[netv1.NetworkPolicyPeerArgs]:
    peers = []
    if allow.namespace_labels is not None or allow.pod_labels is not None:
        peers.append(netv1.NetworkPolicyPeerArgs(
            namespace_selector=None if allow.namespace_labels is None
            else meta.LabelSelectorArgs(match_labels=allow.namespace_labels),
            pod_selector=None if allow.pod_labels is None else meta.LabelSelectorArgs(match_labels=allow.pod_labels)))
    peers += [netv1.NetworkPolicyPeerArgs(ip_block=netv1.IPBlockArgs(cidr=c)) for c in allow.cidrs]
    return peers


def allow_policy_spec(allow: K8sAllow) -> netv1.NetworkPolicySpecArgs:
    """The NetworkPolicy spec of one requested allow."""
    ports = [netv1.NetworkPolicyPortArgs(port=p.port, protocol=p.protocol) for p in allow.ports] or None
    selector = meta.LabelSelectorArgs(match_labels=allow.pod_selector or None)
    if allow.direction == "ingress":
        return netv1.NetworkPolicySpecArgs(pod_selector=selector, policy_types=["Ingress"], ingress=[
            netv1.NetworkPolicyIngressRuleArgs(from_=_peers(allow), ports=ports)])
    return netv1.NetworkPolicySpecArgs(pod_selector=selector, policy_types=["Egress"], egress=[
        netv1.NetworkPolicyEgressRuleArgs(to=_peers(allow), ports=ports)])


DNS_ALLOW = K8sAllow(name="allow-dns", direction="egress",
                     namespace_labels={"kubernetes.io/metadata.name": "kube-system"},
                     pod_labels={"k8s-app": "kube-dns"},
                     ports=[K8sPort(port=53, protocol="UDP"), K8sPort(port=53, protocol="TCP")])


class K8sTenant(pulumi.ComponentResource):
    """Namespace, quota, limits, default deny + allows, and the department group's RoleBinding."""

    def __init__(self, name: str, spec: K8sSpec, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("yunshu:cloud:K8sTenant", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        labels = k8s_labels(spec.labels)

        ns = k8s.core.v1.Namespace(
            f"{name}-ns", metadata=meta.ObjectMetaArgs(name=spec.namespace,
                                                       labels={**labels, **pod_security_labels(spec)}),
            opts=child)
        namespace = ns.metadata.name

        def object_meta(object_name: str) -> meta.ObjectMetaArgs:
            return meta.ObjectMetaArgs(name=object_name, namespace=namespace, labels=labels)

        q = spec.quota
        k8s.core.v1.ResourceQuota(f"{name}-quota", metadata=object_meta("yunshu-quota"),
                                  spec=k8s.core.v1.ResourceQuotaSpecArgs(hard={
                                      "requests.cpu": q.requests_cpu, "requests.memory": q.requests_memory,
                                      "limits.cpu": q.limits_cpu, "limits.memory": q.limits_memory,
                                      "pods": str(q.pods), "services": str(q.services),
                                      "persistentvolumeclaims": str(q.persistent_volume_claims),
                                      "requests.storage": q.requests_storage,
                                      "services.loadbalancers": str(q.load_balancers),
                                      "services.nodeports": str(q.node_ports)}), opts=child)
        lim = spec.limits
        k8s.core.v1.LimitRange(f"{name}-limits", metadata=object_meta("yunshu-limits"),
                               spec=k8s.core.v1.LimitRangeSpecArgs(limits=[k8s.core.v1.LimitRangeItemArgs(
                                   type="Container",
                                   default={"cpu": lim.default_cpu, "memory": lim.default_memory},
                                   default_request={"cpu": lim.default_request_cpu,
                                                    "memory": lim.default_request_memory},
                                   max={"cpu": lim.max_cpu, "memory": lim.max_memory})]), opts=child)
        netv1.NetworkPolicy(f"{name}-default-deny", metadata=object_meta("default-deny"),
                            spec=netv1.NetworkPolicySpecArgs(pod_selector=meta.LabelSelectorArgs(),
                                                             policy_types=["Ingress", "Egress"]), opts=child)
        allows = ([DNS_ALLOW] if spec.allow_dns else []) + list(spec.allows)
        for allow in allows:
            netv1.NetworkPolicy(f"{name}-{allow.name}", metadata=object_meta(allow.name),
                                spec=allow_policy_spec(allow), opts=child)
        k8s.rbac.v1.RoleBinding(
            f"{name}-group-{spec.role}", metadata=object_meta(f"yunshu-group-{spec.role}"),
            role_ref=k8s.rbac.v1.RoleRefArgs(api_group=RBAC_GROUP, kind="ClusterRole", name=spec.role),
            subjects=[k8s.rbac.v1.SubjectArgs(kind="Group", name=spec.group, api_group=RBAC_GROUP)], opts=child)

        self.namespace = namespace
        self.register_outputs({"namespace": namespace})
