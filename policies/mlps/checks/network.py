"""Network checks over the planned/applied security rules and the register's addressing (IPAM)."""

from __future__ import annotations

import ipaddress
import socket
from functools import lru_cache

from policies.mlps.checks import CheckContext, check, failing_share, missing, names, not_applicable, result
from policies.mlps.evidence import Evidence, SecurityRule
from policies.mlps.results import CheckResult, Result

ANY = {ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")}


@lru_cache(maxsize=65536)
def _range(prefix: str) -> tuple[int, int, int]:
    """(IP version, first, last address as integers) of a prefix."""
    net = ipaddress.ip_network(prefix, strict=False)
    return net.version, int(net.network_address), int(net.broadcast_address)


def _address_int(version: int, address: str) -> int:
    """The address as an integer (inet_pton is much faster than ipaddress for the many host addresses)."""
    family = socket.AF_INET if version == 4 else socket.AF_INET6
    try:
        return int.from_bytes(socket.inet_pton(family, address.split("%")[0]), "big")
    except OSError:
        return -1  # unreadable: matches no prefix


def _from_anywhere(rule: SecurityRule) -> bool:
    if rule.remote is None:
        return True
    try:
        return ipaddress.ip_network(rule.remote, strict=False) in ANY
    except ValueError:
        return True  # an unreadable source is treated as the widest


def _covers(rule: SecurityRule, port: int) -> bool:
    if rule.protocol not in (None, "tcp", "udp"):
        return False
    if rule.port_min is None:
        return True
    return rule.port_min <= port <= (rule.port_max if rule.port_max is not None else rule.port_min)


@check("net.default_deny", "边界默认拒绝", "Deny by default at boundaries", "infra")
def default_deny(ev: Evidence, ctx: CheckContext) -> CheckResult:
    cid = "net.default_deny"
    if ev.infra is None or ev.infra.default_deny is None:
        return missing(cid, "安全组/网络策略证据", "security-group / network-policy evidence")
    if ev.infra.default_deny:
        return result(
            cid,
            Result.COMPLIANT,
            "安全组和网络策略默认拒绝，仅放行明确规则",
            "groups and policies deny unless allowed",
            default_deny=True,
        )
    return result(
        cid,
        Result.NON_COMPLIANT,
        "存在默认放行的安全组或命名空间（缺少默认拒绝策略）",
        "a group or namespace allows by default (no default-deny policy)",
        default_deny=False,
    )


@check(
    "net.no_public_admin_ports",
    "管理和数据库端口不向任意地址开放",
    "Admin and database ports not open to the world",
    "infra",
)
def no_public_admin_ports(ev: Evidence, ctx: CheckContext) -> CheckResult:
    cid = "net.no_public_admin_ports"
    if ev.infra is None:
        return missing(cid, "安全组规则", "security rules")
    sensitive = sorted(set(ctx.params.ports.admin) | set(ctx.params.ports.database))
    exposed = [
        {"group": r.group, "port": port, "remote": r.remote or "any"}
        for r in ev.infra.security_rules
        if r.direction == "ingress" and _from_anywhere(r)
        for port in sensitive
        if _covers(r, port)
    ]
    if exposed:
        listed = names(f"{e['group']}:{e['port']}" for e in exposed)
        return result(
            cid,
            Result.NON_COMPLIANT,
            f"以下端口对任意地址开放：{listed}",
            f"open to any address: {listed}",
            exposed=exposed,
        )
    return result(
        cid,
        Result.COMPLIANT,
        "管理和数据库端口未对任意地址开放",
        "no admin or database port open to any address",
        rules=len(ev.infra.security_rules),
    )


@check("net.rules_specific", "规则按地址、端口和协议限定", "Rules name protocol, ports and sources", "infra")
def rules_specific(ev: Evidence, ctx: CheckContext) -> CheckResult:
    cid = "net.rules_specific"
    if ev.infra is None:
        return missing(cid, "安全组规则", "security rules")
    ingress = [r for r in ev.infra.security_rules if r.direction == "ingress"]
    if not ingress:
        return result(cid, Result.COMPLIANT, "无入向放行规则（全部拒绝）", "no ingress allow rules (all denied)")
    loose = [r for r in ingress if r.protocol is None or (r.protocol in ("tcp", "udp") and r.port_min is None)]
    if not loose:
        return result(
            cid,
            Result.COMPLIANT,
            f"{len(ingress)} 条入向规则均限定协议和端口",
            f"all {len(ingress)} ingress rules are specific",
        )
    value = failing_share(len(loose), len(ingress))
    listed = names(r.group for r in loose)
    return result(
        cid,
        value,
        f"{len(loose)}/{len(ingress)} 条规则放行任意协议或全部端口（{listed}）",
        f"{len(loose)}/{len(ingress)} rules allow any protocol or every port ({listed})",
        loose=[r.model_dump() for r in loose],
    )


@check(
    "net.zone_addressing", "主机地址位于所属网络区域的地址段", "Host addresses inside their zones' prefixes", "register"
)
def zone_addressing(ev: Evidence, ctx: CheckContext) -> CheckResult:
    cid = "net.zone_addressing"
    reg = ev.system
    if not reg.hosts:
        return not_applicable(cid, "系统无主机", "the system has no hosts")
    if not reg.networks:
        return missing(cid, "网络区域及地址段登记", "registered networks and prefixes")
    prefixes = [p for n in reg.networks for p in n.prefixes]
    ranges = [_range(p) for p in prefixes]
    stray = []
    for host in reg.hosts:
        for version, addr in ((4, host.ipv4), (6, host.ipv6)):
            if not addr:
                continue
            value = _address_int(version, addr)
            if not any(v == version and lo <= value <= hi for v, lo, hi in ranges):
                stray.append(f"{host.name} {addr}")
    if stray:
        value = (
            failing_share(len(stray), sum(bool(h.ipv4) + bool(h.ipv6) for h in reg.hosts))
        )
        return result(
            cid,
            value,
            f"地址不在登记的网络区域内：{names(stray)}",
            f"addresses outside registered prefixes: {names(stray)}",
            stray=stray,
        )
    return result(
        cid,
        Result.COMPLIANT,
        f"{len(reg.hosts)} 台主机地址均在登记的网络区域内",
        f"all {len(reg.hosts)} hosts are inside registered prefixes",
        prefixes=prefixes,
    )


@check(
    "net.dual_stack",
    "IPv4/IPv6 双栈（城市 IPv6 规模部署要求，参考项）",
    "IPv4/IPv6 dual stack (city IPv6 policy, advisory)",
    "register",
)
def dual_stack(ev: Evidence, ctx: CheckContext) -> CheckResult:
    cid = "net.dual_stack"
    reg = ev.system
    if reg.network_stack is None:
        return missing(cid, "协议栈登记", "registered IP stack")
    if not reg.hosts:
        return not_applicable(cid, "系统无主机", "the system has no hosts")
    without_v6 = [h.name for h in reg.hosts if not h.ipv6]
    if reg.network_stack == "ipv4" or len(without_v6) == len(reg.hosts):
        return result(cid, Result.NON_COMPLIANT, "系统仅 IPv4", "the system is IPv4 only", stack=reg.network_stack)
    if without_v6:
        return result(
            cid,
            Result.PARTIAL,
            f"{len(without_v6)} 台主机无 IPv6 地址：{names(without_v6)}",
            f"{len(without_v6)} hosts lack IPv6: {names(without_v6)}",
            stack=reg.network_stack,
        )
    return result(
        cid,
        Result.COMPLIANT,
        f"协议栈 {reg.network_stack}，全部主机有 IPv6 地址",
        f"stack {reg.network_stack}; every host has IPv6",
        stack=reg.network_stack,
    )
