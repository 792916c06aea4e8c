"""Host checks over the facts of Ansible's evidence playbook (one verdict per host, aggregated per system)."""

from __future__ import annotations

import ipaddress
from datetime import timedelta
from functools import lru_cache
from typing import Any

from pydantic import BaseModel

from policies.mlps.checks import PASS, CheckContext, Verdict, check, per_host
from policies.mlps.evidence import Evidence, HostFacts
from policies.mlps.results import CheckResult

ANY_SOURCE = {ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")}
CRYPTO_METHODS = {"publickey", "gssapi-with-mic", "hostbased"}


@lru_cache(maxsize=4096)
def _source_problem(sources: tuple[str, ...]) -> tuple[str, str] | None:
    """Why a list of allowed ssh sources does not limit admin access (None when it does); hosts share lists."""
    try:
        nets = [ipaddress.ip_network(s, strict=False) for s in sources]
    except ValueError as exc:
        return f"来源地址无效：{exc}", f"invalid source: {exc}"
    if not nets or any(n in ANY_SOURCE for n in nets):
        return "ssh 未限制来源地址", "ssh not limited to set source addresses"
    return None


def _facts(model: BaseModel) -> dict[str, Any]:
    """A flat facts model as a dict (cheaper than model_dump; the values are only read)."""
    return dict(model.__dict__)


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.split("%")[0]).is_loopback
    except ValueError:
        return False


@check("host.password_complexity", "口令复杂度与定期更换", "Password complexity and rotation", "hosts")
def password_complexity(ev: Evidence, ctx: CheckContext) -> CheckResult:
    p = ctx.params.password

    def judge(h: HostFacts, _: CheckContext) -> Verdict | None:
        pw = h.password
        if pw is None:
            return None
        problems = []
        if pw.minlen is None or pw.minlen < p.min_length:
            problems.append((f"最小长度 {pw.minlen} < {p.min_length}", f"minlen {pw.minlen} < {p.min_length}"))
        if pw.minclass is None or pw.minclass < p.min_classes:
            problems.append((f"字符类别 {pw.minclass} < {p.min_classes}", f"minclass {pw.minclass} < {p.min_classes}"))
        if pw.max_days is None or pw.max_days > p.max_age_days:
            problems.append(
                (f"口令有效期 {pw.max_days} 天 > {p.max_age_days}", f"max_days {pw.max_days} > {p.max_age_days}")
            )
        if problems:
            return Verdict(False, "，".join(z for z, _ in problems), ", ".join(e for _, e in problems), _facts(pw))
        return PASS

    return per_host("host.password_complexity", ev, ctx, judge)


@check("host.no_empty_passwords", "无空口令账户", "No accounts with empty passwords", "hosts")
def no_empty_passwords(ev: Evidence, ctx: CheckContext) -> CheckResult:
    def judge(h: HostFacts, _: CheckContext) -> Verdict | None:
        if h.empty_password_accounts is None:
            return None
        sshd_empty = bool(h.sshd and h.sshd.permit_empty_passwords)
        if h.empty_password_accounts or sshd_empty:
            accounts = ", ".join(h.empty_password_accounts) or "—"
            return Verdict(
                False,
                f"空口令账户：{accounts}" + ("；sshd 允许空口令" if sshd_empty else ""),
                f"empty-password accounts: {accounts}" + ("; sshd permits empty passwords" if sshd_empty else ""),
                {"accounts": h.empty_password_accounts, "sshd_permit_empty": sshd_empty},
            )
        return PASS

    return per_host("host.no_empty_passwords", ev, ctx, judge)


@check("host.login_failure_lockout", "登录失败锁定", "Lockout after failed logins", "hosts")
def login_failure_lockout(ev: Evidence, ctx: CheckContext) -> CheckResult:
    p = ctx.params.lockout

    def judge(h: HostFacts, _: CheckContext) -> Verdict | None:
        f = h.faillock
        if f is None:
            return None
        facts = _facts(f)
        if not f.enabled or f.deny is None:
            return Verdict(False, "未启用 faillock", "faillock not enabled", facts)
        if f.deny > p.max_attempts:
            return Verdict(
                False,
                f"失败 {f.deny} 次才锁定（上限 {p.max_attempts}）",
                f"locks after {f.deny} failures (max {p.max_attempts})",
                facts,
            )
        if f.unlock_time is not None and 0 < f.unlock_time < p.min_unlock_seconds:
            return Verdict(False, f"锁定仅 {f.unlock_time} 秒", f"locked for only {f.unlock_time}s", facts)
        return PASS

    return per_host("host.login_failure_lockout", ev, ctx, judge)


@check("host.session_timeout", "登录连接超时退出", "Idle session timeout", "hosts")
def session_timeout(ev: Evidence, ctx: CheckContext) -> CheckResult:
    limit = ctx.params.session.max_idle_seconds

    def judge(h: HostFacts, _: CheckContext) -> Verdict | None:
        ssh_idle = None
        if h.sshd and h.sshd.client_alive_interval:
            ssh_idle = h.sshd.client_alive_interval * max(h.sshd.client_alive_count_max or 1, 1)
        if h.tmout is None and ssh_idle is None:
            return None if h.sshd is None else Verdict(False, "未设置 TMOUT 或 ClientAlive", "no TMOUT or ClientAlive")
        values = [v for v in (h.tmout, ssh_idle) if v]
        facts = {"tmout": h.tmout, "ssh_idle_seconds": ssh_idle}
        if not values or min(values) > limit:
            return Verdict(
                False,
                f"空闲超时 {min(values) if values else '未设置'} 秒 > {limit}",
                f"idle timeout {min(values) if values else 'unset'}s > {limit}s",
                facts,
            )
        return PASS

    return per_host("host.session_timeout", ev, ctx, judge)


@check("host.remote_admin_encrypted", "远程管理加密", "Encrypted remote administration", "hosts")
def remote_admin_encrypted(ev: Evidence, ctx: CheckContext) -> CheckResult:
    cleartext = set(ctx.params.ports.cleartext_admin)

    def judge(h: HostFacts, _: CheckContext) -> Verdict | None:
        if h.listening is None:
            return None
        open_ = sorted({x.port for x in h.listening if x.port in cleartext and not _is_loopback(x.address)})
        if open_:
            return Verdict(
                False, f"明文管理端口在监听：{open_}", f"clear-text admin ports listening: {open_}", {"ports": open_}
            )
        return PASS

    return per_host("host.remote_admin_encrypted", ev, ctx, judge)


@check(
    "host.multi_factor", "双因素鉴别（含密码技术）", "Two-factor authentication with a cryptographic factor", "hosts"
)
def multi_factor(ev: Evidence, ctx: CheckContext) -> CheckResult:
    def judge(h: HostFacts, _: CheckContext) -> Verdict | None:
        if h.sshd is None:
            return None
        methods = (h.sshd.authentication_methods or "").split()
        ok = bool(methods) and all(
            len(m.split(",")) >= 2 and CRYPTO_METHODS & {x.split(":")[0] for x in m.split(",")} for m in methods
        )
        if not ok:
            return Verdict(
                False,
                f"sshd AuthenticationMethods={h.sshd.authentication_methods or '未设置'}，非双因素",
                f"sshd AuthenticationMethods={h.sshd.authentication_methods or 'unset'} is not two-factor",
                {"authentication_methods": h.sshd.authentication_methods},
            )
        return PASS

    return per_host("host.multi_factor", ev, ctx, judge)


@check("host.default_accounts", "默认账户处理", "Default accounts disabled or renamed", "hosts")
def default_accounts(ev: Evidence, ctx: CheckContext) -> CheckResult:
    def judge(h: HostFacts, _: CheckContext) -> Verdict | None:
        if h.sshd is None:
            return None
        problems = []
        if h.default_accounts_enabled:
            problems.append(
                (
                    f"默认账户可用：{', '.join(h.default_accounts_enabled)}",
                    f"default accounts usable: {', '.join(h.default_accounts_enabled)}",
                )
            )
        extra_uid0 = sorted(set(h.uid0_accounts or []) - {"root"})
        if extra_uid0:
            problems.append(
                (f"root 以外的 UID 0 账户：{', '.join(extra_uid0)}", f"UID 0 besides root: {', '.join(extra_uid0)}")
            )
        if (h.sshd.permit_root_login or "yes") not in ctx.params.accounts.root_ssh_login_allowed:
            problems.append(
                (
                    f"允许 root 远程登录（{h.sshd.permit_root_login or '默认'}）",
                    f"root may log in over ssh ({h.sshd.permit_root_login or 'default'})",
                )
            )
        facts = {
            "default_accounts_enabled": h.default_accounts_enabled,
            "uid0": h.uid0_accounts,
            "permit_root_login": h.sshd.permit_root_login,
        }
        if problems:
            return Verdict(False, "；".join(z for z, _ in problems), "; ".join(e for _, e in problems), facts)
        if h.default_accounts_enabled is None or h.uid0_accounts is None:
            return None  # nothing wrong so far, but the account list was not gathered
        return PASS

    return per_host("host.default_accounts", ev, ctx, judge)


@check("host.stale_accounts", "无多余、过期和共享账户", "No surplus, expired or shared accounts", "hosts")
def stale_accounts(ev: Evidence, ctx: CheckContext) -> CheckResult:
    def judge(h: HostFacts, _: CheckContext) -> Verdict | None:
        if h.stale_accounts is None:
            return None
        bad = sorted(set(h.stale_accounts) | set(h.shared_accounts or []))
        if bad:
            return Verdict(
                False,
                f"多余/过期/共享账户：{', '.join(bad)}",
                f"surplus/expired/shared accounts: {', '.join(bad)}",
                {"accounts": bad},
            )
        return PASS

    return per_host("host.stale_accounts", ev, ctx, judge)


@check("host.sudo_least_privilege", "管理用户最小权限", "Least privilege for administrators", "hosts")
def sudo_least_privilege(ev: Evidence, ctx: CheckContext) -> CheckResult:
    def judge(h: HostFacts, _: CheckContext) -> Verdict | None:
        if h.sudo_nopasswd_all is None:
            return None
        if h.sudo_nopasswd_all:
            return Verdict(
                False,
                f"免密 sudo ALL：{', '.join(h.sudo_nopasswd_all)}",
                f"NOPASSWD: ALL for {', '.join(h.sudo_nopasswd_all)}",
                {"nopasswd_all": h.sudo_nopasswd_all},
            )
        return PASS

    return per_host("host.sudo_least_privilege", ev, ctx, judge)


@check("host.mac_enforcing", "强制访问控制（安全标记）", "Mandatory access control enforcing", "hosts")
def mac_enforcing(ev: Evidence, ctx: CheckContext) -> CheckResult:
    def judge(h: HostFacts, _: CheckContext) -> Verdict | None:
        if h.mac is None:
            return None
        ok = (h.mac.kind == "selinux" and h.mac.mode == "enforcing") or (
            h.mac.kind == "apparmor" and h.mac.mode == "enabled"
        )
        if not ok:
            return Verdict(False, f"{h.mac.kind} 为 {h.mac.mode}", f"{h.mac.kind} is {h.mac.mode}", _facts(h.mac))
        return PASS

    return per_host("host.mac_enforcing", ev, ctx, judge)


@check("host.auditd_enabled", "主机安全审计已启用", "Host auditing enabled", "hosts")
def auditd_enabled(ev: Evidence, ctx: CheckContext) -> CheckResult:
    def judge(h: HostFacts, _: CheckContext) -> Verdict | None:
        if h.auditd is None:
            return None
        if not h.auditd.running or h.auditd.rules < 1:
            return Verdict(
                False,
                f"auditd 运行={h.auditd.running}，规则 {h.auditd.rules} 条",
                f"auditd running={h.auditd.running}, {h.auditd.rules} rules",
                _facts(h.auditd),
            )
        return PASS

    return per_host("host.auditd_enabled", ev, ctx, judge)


@check("host.audit_immutable", "审计进程受保护", "Audit configuration locked (immutable)", "hosts")
def audit_immutable(ev: Evidence, ctx: CheckContext) -> CheckResult:
    def judge(h: HostFacts, _: CheckContext) -> Verdict | None:
        if h.auditd is None:
            return None
        if not (h.auditd.running and h.auditd.immutable):
            return Verdict(
                False,
                "审计规则未锁定（auditctl -e 2）",
                "audit rules not locked (auditctl -e 2)",
                _facts(h.auditd),
            )
        return PASS

    return per_host("host.audit_immutable", ev, ctx, judge)


@check("host.log_forwarding", "日志外送集中存储", "Logs forwarded to central collection", "hosts")
def log_forwarding(ev: Evidence, ctx: CheckContext) -> CheckResult:
    def judge(h: HostFacts, _: CheckContext) -> Verdict | None:
        if h.rsyslog is None:
            return None
        if not (h.rsyslog.forwarding and h.rsyslog.targets):
            return Verdict(False, "rsyslog 未转发日志", "rsyslog does not forward logs", _facts(h.rsyslog))
        return PASS

    return per_host("host.log_forwarding", ev, ctx, judge)


@check("host.no_high_risk_ports", "关闭高危端口", "No high-risk ports listening", "hosts")
def no_high_risk_ports(ev: Evidence, ctx: CheckContext) -> CheckResult:
    risky = set(ctx.params.ports.high_risk)

    def judge(h: HostFacts, _: CheckContext) -> Verdict | None:
        if h.listening is None:
            return None
        open_ = sorted({x.port for x in h.listening if x.port in risky and not _is_loopback(x.address)})
        if open_:
            return Verdict(False, f"高危端口在监听：{open_}", f"high-risk ports listening: {open_}", {"ports": open_})
        return PASS

    return per_host("host.no_high_risk_ports", ev, ctx, judge)


@check("host.admin_source_restricted", "限制管理终端地址", "Admin access limited to set sources", "hosts")
def admin_source_restricted(ev: Evidence, ctx: CheckContext) -> CheckResult:
    def judge(h: HostFacts, _: CheckContext) -> Verdict | None:
        if h.sshd is None:
            return None
        sources = h.sshd.allowed_sources
        problem = _source_problem(tuple(sources))
        if problem:
            return Verdict(False, problem[0], problem[1], {"allowed_sources": sources})
        return PASS

    return per_host("host.admin_source_restricted", ev, ctx, judge)


@check("host.patches_current", "漏洞及时修补", "Security patches applied", "hosts")
def patches_current(ev: Evidence, ctx: CheckContext) -> CheckResult:
    limit = ctx.params.patching.max_pending_security_updates

    def judge(h: HostFacts, _: CheckContext) -> Verdict | None:
        if h.pending_security_updates is None:
            return None
        vulns = h.exploitable_vulns or []
        facts = {"pending_security_updates": h.pending_security_updates, "exploitable_vulns": vulns}
        if vulns:
            return Verdict(
                False, f"存在可利用漏洞：{', '.join(vulns)}", f"exploitable vulnerabilities: {', '.join(vulns)}", facts
            )
        if h.pending_security_updates > limit:
            return Verdict(
                False,
                f"{h.pending_security_updates} 个安全更新未安装",
                f"{h.pending_security_updates} security updates pending",
                facts,
            )
        return PASS

    return per_host("host.patches_current", ev, ctx, judge)


@check("host.antimalware", "恶意代码防范及特征库更新", "Anti-malware running and up to date", "hosts")
def antimalware(ev: Evidence, ctx: CheckContext) -> CheckResult:
    max_age = ctx.params.antimalware.max_signature_age_days

    def judge(h: HostFacts, _: CheckContext) -> Verdict | None:
        a = h.antimalware
        if a is None:
            return None
        if not (a.installed and a.running):
            return Verdict(
                False, "未安装或未运行防恶意代码软件", "anti-malware not installed or not running", _facts(a)
            )
        if a.signatures_age_days is None or a.signatures_age_days > max_age:
            return Verdict(
                False,
                f"特征库 {a.signatures_age_days} 天未更新",
                f"signatures {a.signatures_age_days} days old",
                _facts(a),
            )
        return PASS

    return per_host("host.antimalware", ev, ctx, judge)


@check("host.baseline_applied", "已按基线加固", "Hardening baseline applied", "hosts")
def baseline_applied(ev: Evidence, ctx: CheckContext) -> CheckResult:
    def judge(h: HostFacts, _: CheckContext) -> Verdict | None:
        if h.baseline is None:
            return None
        if not (h.baseline.playbook and h.baseline.applied_at):
            return Verdict(False, "未执行加固基线", "hardening baseline never applied")
        return PASS

    return per_host("host.baseline_applied", ev, ctx, judge)


@check("host.facts_recent", "配置信息近期已采集", "Configuration facts recently collected", "hosts")
def facts_recent(ev: Evidence, ctx: CheckContext) -> CheckResult:
    limit = timedelta(days=ctx.params.facts.max_age_days)

    def judge(h: HostFacts, c: CheckContext) -> Verdict | None:
        age = c.as_of - h.collected_at
        if age > limit:
            return Verdict(
                False,
                f"配置信息 {age.days} 天前采集",
                f"facts collected {age.days} days ago",
                {"collected_at": h.collected_at.isoformat()},
            )
        return PASS

    return per_host("host.facts_recent", ev, ctx, judge)
