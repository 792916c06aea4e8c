"""Kubernetes checks over the namespaces read from the cluster's API (evidence section ``k8s``, one
:class:`~policies.mlps.evidence.K8sFacts` per namespace).

What a missing or empty section means:

* ``k8s`` is ``None`` — not collected: no cluster is configured (``settings.kubernetes``) or its API could not be
  read. Systems whose register hosting is not a cloud get 不适用: Yunshu's Kubernetes tenants (``K8sTenant``) exist
  only on the government / department cloud. Every other system gets 待人工 — it may run on the cloud's Kubernetes
  and nobody looked, so the item is never 符合 without evidence.
* ``k8s`` is ``[]`` — the cluster was read and holds no namespace labelled with the system's id (nor, for a system
  on a cloud, its department's shared namespace): 不适用, the system runs nothing on that cluster.

Otherwise each namespace is judged: all pass → 符合, some → 部分符合, none → 不符合; a namespace whose facts could not
be read makes the result 待人工 unless another one failed. A namespace may itself be 部分符合 (e.g. a binding to an
individual user, where one to the department's group is expected).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import ip_network
from typing import Any

from policies.mlps.checks import CheckContext, check, missing, names, not_applicable, result
from policies.mlps.evidence import Evidence, K8sFacts, K8sNetworkPolicy, K8sPeer, K8sPolicyRule, K8sRule
from policies.mlps.results import CheckResult, Result

POD_SECURITY_LABEL = "pod-security.kubernetes.io/enforce"
DEPARTMENT_LABEL = "yunshu/department"


@dataclass(slots=True)
class NsVerdict:
    """One namespace's verdict (符合 / 部分符合 / 不符合) and, when not 符合, why, with the facts that show it."""

    value: Result
    zh: str = ""
    en: str = ""
    facts: dict[str, Any] = field(default_factory=dict)


OK = NsVerdict(Result.COMPLIANT)
NsJudge = Callable[[K8sFacts, Evidence, CheckContext], NsVerdict | None]


def _not_assessable(cid: str, ev: Evidence) -> CheckResult | None:
    """不适用 / 待人工 when there is no namespace to judge (see the module docstring), else None."""
    if ev.k8s is None:
        if ev.system.effective_cloud_role is None:
            return not_applicable(cid, "系统不在云上，不涉及 Kubernetes 命名空间",
                                  "the system is not on a cloud: no Kubernetes namespaces")
        return missing(cid, "Kubernetes 集群证据（未配置集群或 API 不可读）",
                       "Kubernetes evidence (no cluster configured, or its API could not be read)")
    if not ev.k8s:
        return not_applicable(cid, "集群中无本系统的命名空间（系统未部署在 Kubernetes 上）",
                              "no namespace of the system in the cluster (the system does not run on Kubernetes)")
    return None


def per_namespace(cid: str, ev: Evidence, ctx: CheckContext, judge: NsJudge) -> CheckResult:
    """Judge every namespace of the system and combine (see the module docstring)."""
    early = _not_assessable(cid, ev)
    if early is not None:
        return early
    assert ev.k8s is not None
    passed: list[str] = []
    unknown: list[str] = []
    failed: dict[str, NsVerdict] = {}
    for ns in ev.k8s:
        verdict = judge(ns, ev, ctx)
        if verdict is None:
            unknown.append(ns.namespace)
        elif verdict.value is Result.COMPLIANT:
            passed.append(ns.namespace)
        else:
            failed[ns.namespace] = verdict
    used: dict[str, Any] = {"passed": passed, "unknown": unknown,
                            "failed": {n: {"result": v.value.value, **v.facts} for n, v in failed.items()}}
    total = len(passed) + len(unknown) + len(failed)
    if failed:
        all_bad = not passed and all(v.value is Result.NON_COMPLIANT for v in failed.values())
        detail_zh = "；".join(f"{n}：{v.zh}" for n, v in list(failed.items())[:5])
        detail_en = "; ".join(f"{n}: {v.en}" for n, v in list(failed.items())[:5])
        return result(cid, Result.NON_COMPLIANT if all_bad else Result.PARTIAL,
                      f"{len(failed)}/{total} 个命名空间不满足（{detail_zh}）",
                      f"{len(failed)}/{total} namespace(s) fail ({detail_en})", **used)
    if unknown:
        reasons = {n: ns.unreadable for ns in ev.k8s if (n := ns.namespace) in unknown}
        return result(cid, Result.PENDING, f"{len(unknown)} 个命名空间的相关对象未能读取：{names(unknown)}",
                      f"{len(unknown)} namespace(s) whose objects could not be read: {names(unknown)}",
                      unreadable=reasons, **used)
    return result(cid, Result.COMPLIANT, f"全部 {len(passed)} 个命名空间满足", f"all {len(passed)} namespace(s) pass",
                  **used)


# --- network policies -----------------------------------------------------------------------------------------


def _everything(peer: K8sPeer) -> bool:
    """A peer that matches any address: 0.0.0.0/0 or ::/0 without exceptions, or every pod of every namespace."""
    if peer.cidr is not None:
        return ip_network(peer.cidr, strict=False).prefixlen == 0 and not peer.except_cidrs
    return peer.namespace_selector == {} and not peer.pod_selector


def _open_rule(rule: K8sRule) -> bool:
    """Any peer on any port."""
    return not rule.ports and (not rule.peers or any(_everything(p) for p in rule.peers))


def _rules(policy: K8sNetworkPolicy, direction: str) -> list[K8sRule]:
    return policy.ingress if direction == "Ingress" else policy.egress


def _denies_by_default(policies: list[K8sNetworkPolicy], direction: str) -> tuple[bool, list[str]]:
    """Is there a default deny for ``direction`` (empty podSelector, the type given, no rules), and which policies
    open the direction to everything for every pod (which voids it)."""
    deny = any(p.pod_selector == {} and direction in p.policy_types and not _rules(p, direction) for p in policies)
    voids = [p.name for p in policies if p.pod_selector == {} and direction in p.policy_types
             and any(_open_rule(r) for r in _rules(p, direction))]
    return deny, voids


def _judge_default_deny(ns: K8sFacts, ev: Evidence, ctx: CheckContext) -> NsVerdict | None:
    if ns.network_policies is None:
        return None
    deny_in, void_in = _denies_by_default(ns.network_policies, "Ingress")
    deny_out, void_out = _denies_by_default(ns.network_policies, "Egress")
    facts = {"ingress_default_deny": deny_in, "egress_default_deny": deny_out,
             "allow_all": sorted({*void_in, *void_out})}
    if not deny_in or void_in:
        why_zh = f"策略 {names(void_in)} 对所有来源全放行" if void_in else "无默认拒绝入站的 NetworkPolicy"
        why_en = f"policy {names(void_in)} allows everything in" if void_in else "no default-deny ingress NetworkPolicy"
        return NsVerdict(Result.NON_COMPLIANT, why_zh, why_en, facts)
    if ctx.params.k8s.require_egress_deny and (not deny_out or void_out):
        why_zh = f"策略 {names(void_out)} 对所有目的全放行" if void_out else "出站未默认拒绝"
        why_en = f"policy {names(void_out)} allows everything out" if void_out else "no default-deny egress"
        return NsVerdict(Result.PARTIAL, why_zh, why_en, facts)
    return OK


@check("k8s.network_default_deny", "Kubernetes 命名空间默认拒绝（NetworkPolicy）",
       "Kubernetes namespaces deny by default (NetworkPolicy)", "k8s")
def network_default_deny(ev: Evidence, ctx: CheckContext) -> CheckResult:
    return per_namespace("k8s.network_default_deny", ev, ctx, _judge_default_deny)


def _describe(policy: str, direction: str, index: int, rule: K8sRule) -> tuple[str, str] | None:
    """What makes a rule unspecific (zh, en), or None when it names its peers and ports."""
    zh: list[str] = []
    en: list[str] = []
    if not rule.peers or any(_everything(p) for p in rule.peers):
        zh.append("任意来源/目的")
        en.append("any peer")
    if not rule.ports:
        zh.append("全部端口")
        en.append("every port")
    if not zh:
        return None
    where = f"{policy} {direction.lower()}[{index}]"
    return f"{where}：{'、'.join(zh)}", f"{where}: {', '.join(en)}"


def _judge_allows(ns: K8sFacts, ev: Evidence, ctx: CheckContext) -> NsVerdict | None:
    if ns.network_policies is None:
        return None
    total = 0
    loose: list[tuple[str, str]] = []
    for policy in ns.network_policies:
        for direction in ("Ingress", "Egress"):
            if direction not in policy.policy_types:
                continue
            for i, rule in enumerate(_rules(policy, direction)):
                total += 1
                issue = _describe(policy.name, direction, i, rule)
                if issue:
                    loose.append(issue)
    if not loose:
        return OK
    value = Result.NON_COMPLIANT if len(loose) == total else Result.PARTIAL
    return NsVerdict(value, "；".join(z for z, _ in loose[:5]), "; ".join(e for _, e in loose[:5]),
                     {"rules": total, "unspecific": [e for _, e in loose]})


@check("k8s.network_allows_specific", "Kubernetes 放行规则限定来源/目的与端口",
       "Kubernetes allow rules name their peers and ports", "k8s")
def network_allows_specific(ev: Evidence, ctx: CheckContext) -> CheckResult:
    return per_namespace("k8s.network_allows_specific", ev, ctx, _judge_allows)


# --- tenant isolation: own namespace, quota, limits ------------------------------------------------------------


def _judge_isolation(ns: K8sFacts, ev: Evidence, ctx: CheckContext) -> NsVerdict | None:
    params = ctx.params.k8s
    department, own = ns.labels.get(DEPARTMENT_LABEL), ev.system.department
    if own and department != own:
        return NsVerdict(Result.NON_COMPLIANT, f"命名空间的部门标签为 {department or '无'}，不是 {own}",
                         f"the namespace's department label is {department or 'missing'}, not {own}",
                         {"department_label": department})
    if ns.quotas is None or ns.limit_ranges is None:
        return None
    if not ns.quotas:
        return NsVerdict(Result.NON_COMPLIANT, "无 ResourceQuota，租户可耗尽集群资源",
                         "no ResourceQuota: the tenant can exhaust the cluster", {"quotas": []})
    hard = {key for q in ns.quotas for key in q.hard}
    missing_keys = [k for k in params.quota_keys if k not in hard]
    containers = [item for lr in ns.limit_ranges for item in lr.limits if item.type == "Container"]
    missing_limits = [k for k in params.limit_keys
                      if not any({"cpu", "memory"} <= set(getattr(item, k)) for item in containers)]
    zh: list[str] = []
    en: list[str] = []
    if missing_keys:
        zh.append(f"配额未限制 {', '.join(missing_keys)}")
        en.append(f"quota does not limit {', '.join(missing_keys)}")
    if not containers:
        zh.append("无容器级 LimitRange")
        en.append("no Container LimitRange")
    elif missing_limits:
        zh.append(f"LimitRange 缺少 {', '.join(missing_limits)}（CPU 与内存）")
        en.append(f"LimitRange lacks {', '.join(missing_limits)} (cpu and memory)")
    if zh:
        return NsVerdict(Result.PARTIAL, "；".join(zh), "; ".join(en),
                         {"quota_missing": missing_keys,
                          "limit_missing": missing_limits if containers else list(params.limit_keys)})
    return OK


@check("k8s.namespace_isolation", "Kubernetes 租户隔离：专属命名空间、资源配额与默认限制",
       "Kubernetes tenant isolation: own namespace, resource quota and default limits", "k8s")
def namespace_isolation(ev: Evidence, ctx: CheckContext) -> CheckResult:
    return per_namespace("k8s.namespace_isolation", ev, ctx, _judge_isolation)


# --- RBAC -----------------------------------------------------------------------------------------------------


def _wildcard(role_rules: list[K8sPolicyRule]) -> bool:
    return any("*" in r.verbs or "*" in r.resources or "*" in r.api_groups for r in role_rules)


def _judge_rbac(ns: K8sFacts, ev: Evidence, ctx: CheckContext) -> NsVerdict | None:
    if ns.bindings is None:
        return None
    params = ctx.params.k8s
    severe: list[tuple[str, str]] = []
    users: list[str] = []
    for b in ns.bindings:
        where = f"{'ClusterRoleBinding' if b.scope == 'cluster' else 'RoleBinding'} {b.name}"
        if b.role_kind == "ClusterRole" and b.role in params.privileged_roles:
            who = ", ".join(f"{s.kind}:{s.name}" for s in b.subjects) or "-"
            severe.append((f"{where} 授予 {b.role}（{who}）", f"{where} grants {b.role} ({who})"))
        for s in b.subjects:
            if s.kind == "Group" and s.name in params.broad_groups:
                severe.append((f"{where} 授权给全体 {s.name}", f"{where} grants to everyone ({s.name})"))
            elif s.kind == "User" and not s.name.startswith("system:"):
                users.append(f"{where} → {s.name}")
    wildcards: list[str] = []
    if ns.roles is not None:
        wildcards = [f"{r.kind} {r.name}" for r in ns.roles if _wildcard(r.rules)]
        severe += [(f"{w} 含通配（*）规则", f"{w} has wildcard (*) rules") for w in wildcards]
    facts = {"privileged": [e for _, e in severe], "user_bindings": users}
    if severe:
        zh = "；".join(z for z, _ in severe[:5]) + (f"；直接授权给个人用户：{names(users)}" if users else "")
        en = "; ".join(e for _, e in severe[:5]) + (f"; bound to individual users: {names(users)}" if users else "")
        return NsVerdict(Result.NON_COMPLIANT, zh, en, facts)
    if users:
        return NsVerdict(Result.PARTIAL, f"直接授权给个人用户（应授权给部门用户组）：{names(users)}",
                         f"bound to individual users (bind the department's group instead): {names(users)}", facts)
    if ns.roles is None:
        return None  # wildcard rules unknown
    return OK


@check("k8s.rbac_least_privilege", "Kubernetes RBAC 最小权限：无 cluster-admin、按组授权、无通配规则",
       "Kubernetes RBAC least privilege: no cluster-admin, group bindings, no wildcard rules", "k8s")
def rbac_least_privilege(ev: Evidence, ctx: CheckContext) -> CheckResult:
    return per_namespace("k8s.rbac_least_privilege", ev, ctx, _judge_rbac)


# --- Pod Security ---------------------------------------------------------------------------------------------


def accepted_pod_security(ctx: CheckContext) -> list[str]:
    """Accepted enforce levels for the system's 等保 level (levels above the table take its highest row)."""
    table = ctx.params.k8s.pod_security
    level = ctx.level if ctx.level in table else max(table)
    return list(table[level])


def _judge_pod_security(ns: K8sFacts, ev: Evidence, ctx: CheckContext) -> NsVerdict | None:
    accepted = accepted_pod_security(ctx)
    level = ns.pod_security_enforce
    facts = {"enforce": level, "accepted": accepted}
    if level is None:
        return NsVerdict(Result.NON_COMPLIANT, f"未设置 {POD_SECURITY_LABEL}（等同 privileged）",
                         f"no {POD_SECURITY_LABEL} label (same as privileged)", facts)
    if level not in accepted:
        return NsVerdict(Result.NON_COMPLIANT, f"强制级别为 {level}，第{ctx.level}级须为 {'/'.join(accepted)}",
                         f"enforces {level}; level {ctx.level} needs {'/'.join(accepted)}", facts)
    return OK


@check("k8s.pod_security", "Kubernetes Pod 安全标准强制级别", "Kubernetes Pod Security Standard enforced", "k8s")
def pod_security(ev: Evidence, ctx: CheckContext) -> CheckResult:
    return per_namespace("k8s.pod_security", ev, ctx, _judge_pod_security)
