"""Kubernetes collector: the system's namespaces read through the official ``kubernetes`` client — pod-security
labels, NetworkPolicies, ResourceQuotas, LimitRanges, RoleBindings / Roles and the ClusterRoleBindings that grant
in every namespace — as :class:`~policies.mlps.evidence.K8sFacts`.

A system's namespaces are those labelled ``yunshu/system-id=<id>`` (what ``K8sTenant`` writes, infra/cloud/k8s.py),
plus, for a system hosted on a cloud, its department's shared namespaces (``yunshu/system-id=shared`` and
``yunshu/department=<dept>``: a department namespace serves the department's cloud systems).

The client is built from ``settings.kubernetes`` (a kubeconfig and context, or the in-cluster service account) into
its own ``Configuration`` / ``ApiClient`` — never the client's global default — so that several clusters, and tests
with their own API server, never interfere. Nothing here raises: without a cluster, or when the API cannot be read
(unreachable, 401, 403, a bad kubeconfig), the section is ``None`` (待人工) and the detail and the provenance say why.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

import urllib3
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException
from kubernetes.config.incluster_config import load_incluster_config
from kubernetes.config.kube_config import load_kube_config

from core.settings import KubernetesSettings
from infra.cloud.tags import K8S_PREFIX
from policies.mlps.evidence import (
    CLOUD_HOSTING,
    K8sBinding,
    K8sFacts,
    K8sLimit,
    K8sLimitRange,
    K8sNetworkPolicy,
    K8sPeer,
    K8sPolicyRule,
    K8sQuota,
    K8sRole,
    K8sRule,
    K8sSubject,
    Provenance,
)
from portal.compliance.digest import stamp
from portal.compliance.system_info import SystemInfo

SYSTEM_LABEL = f"{K8S_PREFIX}system-id"
DEPARTMENT_LABEL = f"{K8S_PREFIX}department"
SHARED = "shared"
POD_SECURITY_ENFORCE = "pod-security.kubernetes.io/enforce"
BOOTSTRAP_LABEL = "kubernetes.io/bootstrapping"  # "rbac-defaults": the cluster's own bindings (system:masters …)
NOT_CONFIGURED = ("未配置 Kubernetes 集群（settings.kubernetes），但已声明在用（kubernetes.in_use），"
                  "Kubernetes 项待人工核查",
                  "no Kubernetes cluster configured (settings.kubernetes) though one is declared in use "
                  "(kubernetes.in_use); the Kubernetes items stay pending")
NOT_IN_USE = ("未配置 Kubernetes 集群，亦未声明在用（kubernetes.in_use=false）：Kubernetes 项不适用",
              "no Kubernetes cluster configured and none declared in use (kubernetes.in_use=false): the Kubernetes "
              "items do not apply")

Result = tuple[list[K8sFacts] | None, dict[str, Provenance], dict[str, Any]]


class Unreadable(Exception):
    """The cluster's API could not be read; ``zh`` / ``en`` say why."""

    def __init__(self, zh: str, en: str) -> None:
        super().__init__(en)
        self.zh, self.en = zh, en


# --- the client -----------------------------------------------------------------------------------------------


def api_client(settings: KubernetesSettings) -> k8s.ApiClient:
    """An ApiClient of its own for the configured cluster (ConfigException / OSError when the config is unusable)."""
    cfg = k8s.Configuration()
    if settings.in_cluster:
        load_incluster_config(client_configuration=cfg)
    else:
        assert settings.kubeconfig is not None
        if not settings.kubeconfig.is_file():
            raise ConfigException(f"kubeconfig {settings.kubeconfig} does not exist")
        load_kube_config(config_file=str(settings.kubeconfig), context=settings.context, client_configuration=cfg,
                         persist_config=False)
    cfg.retries = 1  # one retry for a transient failure; an unreachable server is reported, not waited on
    return k8s.ApiClient(configuration=cfg)


def _api_message(exc: ApiException) -> str:
    try:
        return str(json.loads(exc.body or "")["message"])
    except (ValueError, KeyError, TypeError):
        return exc.reason or ""


def _explain(exc: BaseException, server: str) -> Unreadable:
    """A clear reason (zh, en) for an API failure."""
    if isinstance(exc, ApiException):
        detail = _api_message(exc)
        if exc.status == 401:
            return Unreadable(f"API 服务器 {server} 拒绝凭据（401 Unauthorized：令牌错误或过期）",
                              f"the API server {server} refused the credentials (401 Unauthorized: wrong or expired "
                              f"token){': ' + detail if detail else ''}")
        if exc.status == 403:
            return Unreadable(f"采集账号无权读取（403 Forbidden）：{detail}",
                              f"the collector's account may not read this (403 Forbidden): {detail}")
        return Unreadable(f"API 返回 {exc.status} {exc.reason}：{detail}",
                          f"the API answered {exc.status} {exc.reason}: {detail}")
    if isinstance(exc, urllib3.exceptions.HTTPError):
        cause = getattr(exc, "reason", None) or exc
        return Unreadable(f"无法连接 API 服务器 {server}（{type(cause).__name__}）",
                          f"the API server {server} is unreachable ({type(cause).__name__}: {cause})")
    return Unreadable(f"读取 Kubernetes API 失败：{exc}", f"reading the Kubernetes API failed: {exc}")


# --- API objects → facts -------------------------------------------------------------------------------------


def _selector(sel: Any) -> dict[str, str] | None:
    """A LabelSelector as labels; expressions as ``key: Op(v1,v2)``. None stays None; an empty selector is {}."""
    if sel is None:
        return None
    out = dict(sel.match_labels or {})
    for expr in sel.match_expressions or []:
        out[expr.key] = f"{expr.operator}({','.join(expr.values or [])})"
    return out


def _ports(ports: list[Any] | None) -> list[str]:
    out = []
    for p in ports or []:
        port = "*" if p.port is None else str(p.port)
        if p.end_port is not None:
            port = f"{port}-{p.end_port}"
        out.append(f"{p.protocol or 'TCP'}/{port}")
    return out


def _peers(peers: list[Any] | None) -> list[K8sPeer]:
    out = []
    for peer in peers or []:
        block = peer.ip_block
        out.append(K8sPeer(cidr=block.cidr if block else None, except_cidrs=list(block._except or []) if block else [],
                           namespace_selector=_selector(peer.namespace_selector),
                           pod_selector=_selector(peer.pod_selector)))
    return out


def network_policy(obj: Any) -> K8sNetworkPolicy:
    """A NetworkPolicy as facts, with the policy types Kubernetes applies when ``policyTypes`` is not given."""
    spec = obj.spec
    types = list(spec.policy_types or ["Ingress", *(["Egress"] if spec.egress else [])])
    return K8sNetworkPolicy(
        name=obj.metadata.name, pod_selector=_selector(spec.pod_selector) or {}, policy_types=types,
        ingress=[K8sRule(peers=_peers(r._from), ports=_ports(r.ports)) for r in spec.ingress or []],
        egress=[K8sRule(peers=_peers(r.to), ports=_ports(r.ports)) for r in spec.egress or []])


def _binding(obj: Any, scope: str) -> K8sBinding:
    return K8sBinding(name=obj.metadata.name, scope=scope, role_kind=obj.role_ref.kind, role=obj.role_ref.name,
                      subjects=[K8sSubject(kind=s.kind, name=s.name, namespace=s.namespace)
                                for s in obj.subjects or []])


def _role(obj: Any, kind: str) -> K8sRole:
    return K8sRole(name=obj.metadata.name, kind=kind,
                   rules=[K8sPolicyRule(api_groups=list(r.api_groups or []), resources=list(r.resources or []),
                                        verbs=list(r.verbs or [])) for r in obj.rules or []])


def _default_binding(obj: Any) -> bool:
    """The cluster's own ClusterRoleBindings (bootstrap defaults and ``system:`` components)."""
    labels = obj.metadata.labels or {}
    return labels.get(BOOTSTRAP_LABEL) == "rbac-defaults" or obj.metadata.name.startswith("system:")


# --- reading ----------------------------------------------------------------------------------------------------


class _Reader:
    """Reads one cluster with one ApiClient; keeps the raw objects read (the material the digests cover)."""

    def __init__(self, api: k8s.ApiClient, timeout: float) -> None:
        self.api, self.timeout = api, timeout
        self.core, self.net, self.rbac = k8s.CoreV1Api(api), k8s.NetworkingV1Api(api), k8s.RbacAuthorizationV1Api(api)
        self.server = api.configuration.host
        self._cluster_roles: dict[str, Any] = {}

    def raw(self, obj: Any) -> Any:
        return self.api.sanitize_for_serialization(obj)

    def namespaces(self, selector: str) -> list[Any]:
        return self.core.list_namespace(label_selector=selector, _request_timeout=self.timeout).items

    def cluster_bindings(self) -> list[Any]:
        items = self.rbac.list_cluster_role_binding(_request_timeout=self.timeout).items
        return [b for b in items if not _default_binding(b)]

    def cluster_role(self, name: str) -> Any:
        if name not in self._cluster_roles:
            self._cluster_roles[name] = self.rbac.read_cluster_role(name, _request_timeout=self.timeout)
        return self._cluster_roles[name]

    def namespace(self, ns: Any, shared: bool, cluster_bindings: list[Any] | None,
                  cluster_bindings_error: str | None) -> tuple[K8sFacts, dict[str, Any]]:
        """One namespace's facts and the raw objects read."""
        name = ns.metadata.name
        labels = dict(ns.metadata.labels or {})
        raw: dict[str, Any] = {"namespace": self.raw(ns)}
        unreadable: dict[str, str] = {}

        def read(kind: str, call: Callable[..., Any]) -> list[Any] | None:
            try:
                items = call(name, _request_timeout=self.timeout).items
            except Exception as exc:  # each kind on its own: a 403 on one is no reason to drop the others
                unreadable[kind] = _explain(exc, self.server).en
                return None
            raw[kind] = [self.raw(i) for i in items]
            return items

        policies = read("networkpolicies", self.net.list_namespaced_network_policy)
        quotas = read("resourcequotas", self.core.list_namespaced_resource_quota)
        limits = read("limitranges", self.core.list_namespaced_limit_range)
        role_bindings = read("rolebindings", self.rbac.list_namespaced_role_binding)
        roles_read = read("roles", self.rbac.list_namespaced_role)

        bindings: list[K8sBinding] | None = None
        if role_bindings is not None and cluster_bindings is not None:
            bindings = [_binding(b, "namespace") for b in role_bindings]
            bindings += [_binding(b, "cluster") for b in cluster_bindings]
        elif cluster_bindings_error:
            unreadable["clusterrolebindings"] = cluster_bindings_error
        roles: list[K8sRole] | None = None
        if roles_read is not None and role_bindings is not None:
            roles = [_role(r, "Role") for r in roles_read]
            for ref in sorted({b.role_ref.name for b in role_bindings if b.role_ref.kind == "ClusterRole"}):
                try:
                    cluster_role = self.cluster_role(ref)
                except ApiException as exc:
                    if exc.status == 404:  # a binding to a missing ClusterRole grants nothing
                        continue
                    unreadable[f"clusterroles/{ref}"] = _explain(exc, self.server).en
                    roles = None
                    break
                except Exception as exc:
                    unreadable[f"clusterroles/{ref}"] = _explain(exc, self.server).en
                    roles = None
                    break
                raw.setdefault("clusterroles", []).append(self.raw(cluster_role))
                roles.append(_role(cluster_role, "ClusterRole"))
        facts = K8sFacts(
            namespace=name, cluster=self.server, labels=labels, shared=shared,
            pod_security_enforce=labels.get(POD_SECURITY_ENFORCE),
            network_policies=None if policies is None else [network_policy(p) for p in policies],
            quotas=None if quotas is None else [K8sQuota(name=q.metadata.name, hard=dict(q.spec.hard or {}))
                                                for q in quotas],
            limit_ranges=None if limits is None else [
                K8sLimitRange(name=lr.metadata.name, limits=[
                    K8sLimit(type=item.type, default=dict(item.default or {}),
                             default_request=dict(item.default_request or {}), max=dict(item.max or {}))
                    for item in lr.spec.limits or []]) for lr in limits],
            bindings=bindings, roles=roles, unreadable=unreadable)
        return facts, raw


def selectors(system: SystemInfo) -> list[tuple[str, bool]]:
    """The label selectors of the system's namespaces, each with "is it the department's shared namespace"."""
    own = [(f"{SYSTEM_LABEL}={system.id}", False)]
    if system.hosting in CLOUD_HOSTING:
        own.append((f"{SYSTEM_LABEL}={SHARED},{DEPARTMENT_LABEL}={system.department_code}", True))
    return own


def _failed(source: str, reason: Unreadable, now: datetime, detail: dict[str, Any]) -> Result:
    detail.update(reason=reason.en, reason_zh=reason.zh)
    material = {"error": reason.en, **{k: v for k, v in detail.items() if k != "reason_zh"}}
    return None, {"k8s": stamp(f"{source}: {reason.en}", now, material)}, detail


def collect_k8s(settings: KubernetesSettings, system: SystemInfo, now: datetime) -> Result:
    """The system's namespaces as evidence, provenance (``k8s`` over the whole read, ``k8s:<namespace>`` per
    namespace) and what was read. Never raises: failures come back as ``None`` with the reason."""
    if not settings.configured:
        zh, en = NOT_CONFIGURED if settings.in_use else NOT_IN_USE
        detail: dict[str, Any] = {"configured": False, "in_use": settings.in_use, "reason": en, "reason_zh": zh}
        provenance = {"k8s": stamp(f"kubernetes: {en}", now, {"configured": False, "in_use": settings.in_use})}
        # declared not in use: read as "no namespace of this system" (不适用), with the declaration as its source
        return (None if settings.in_use else []), provenance, detail
    origin = "in-cluster service account" if settings.in_cluster else \
        f"kubeconfig {settings.kubeconfig}" + (f" context {settings.context}" if settings.context else "")
    detail = {"configured": True, "config": origin}
    try:
        api = api_client(settings)
    except (ConfigException, OSError, ValueError, TypeError, KeyError) as exc:
        return _failed(f"kubernetes ({origin})", Unreadable(f"Kubernetes 配置不可用：{exc}",
                                                            f"the Kubernetes configuration is unusable: {exc}"),
                       now, detail)
    with api:
        reader = _Reader(api, settings.request_timeout_s)
        source = f"kubernetes API {reader.server} ({origin})"
        detail["cluster"] = reader.server
        try:
            facts, provenance, material = _read(reader, system, now, source)
        except Exception as exc:  # unreachable, 401/403 on the namespace list, or an answer that is not Kubernetes
            return _failed(source, _explain(exc, reader.server), now, detail)
    provenance["k8s"] = stamp(source, now, material)
    detail["selectors"] = material["selectors"]
    detail["namespaces"] = {f.namespace: {
        "shared": f.shared, "pod_security": f.pod_security_enforce,
        "network_policies": None if f.network_policies is None else [p.name for p in f.network_policies],
        "quotas": None if f.quotas is None else [q.name for q in f.quotas],
        "limit_ranges": None if f.limit_ranges is None else [lr.name for lr in f.limit_ranges],
        "bindings": None if f.bindings is None else [f"{b.scope}:{b.name}" for b in f.bindings],
        "unreadable": f.unreadable} for f in facts}
    if not facts:
        detail["reason"] = "no namespace of the system in the cluster"
        detail["reason_zh"] = "集群中无本系统的命名空间"
    return facts, provenance, detail


def _read(reader: _Reader, system: SystemInfo, now: datetime,
          source: str) -> tuple[list[K8sFacts], dict[str, Provenance], dict[str, Any]]:
    """The namespaces of the system with their objects, per-namespace provenance and the raw material."""
    found: list[tuple[Any, bool]] = []
    for selector, shared in selectors(system):
        found += [(ns, shared) for ns in reader.namespaces(selector)]
    cluster_bindings: list[Any] | None = None
    cluster_error: str | None = None
    if found:
        try:
            cluster_bindings = reader.cluster_bindings()
        except Exception as exc:  # e.g. 403: the namespaces are still judged on what could be read
            cluster_error = _explain(exc, reader.server).en
    facts: list[K8sFacts] = []
    provenance: dict[str, Provenance] = {}
    material: dict[str, Any] = {"selectors": [s for s, _ in selectors(system)],
                                "clusterrolebindings": [reader.raw(b) for b in cluster_bindings or []],
                                "namespaces": {}}
    for ns, shared in found:
        if ns.metadata.name in material["namespaces"]:
            continue
        ns_facts, raw = reader.namespace(ns, shared, cluster_bindings, cluster_error)
        facts.append(ns_facts)
        material["namespaces"][ns_facts.namespace] = raw
        provenance[f"k8s:{ns_facts.namespace}"] = stamp(f"{source} namespace {ns_facts.namespace}", now, raw)
    return facts, provenance, material
