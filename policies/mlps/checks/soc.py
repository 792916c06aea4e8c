"""SOC health checks: log sources reporting, retention, alert handling, network detection."""

from __future__ import annotations

from policies.mlps.checks import CheckContext, check, failing_share, missing, names, not_applicable, result
from policies.mlps.evidence import Evidence
from policies.mlps.results import CheckResult, Result


@check("soc.sources_reporting", "主机日志 24 小时内均有上报", "Every host reported logs in the last 24 h", "soc")
def sources_reporting(ev: Evidence, ctx: CheckContext) -> CheckResult:
    cid = "soc.sources_reporting"
    if ev.soc is None:
        return missing(cid, "态势感知日志源状态", "SOC source health")
    expected = sorted(h.name for h in ev.system.hosts)
    if not expected:
        return not_applicable(cid, "系统无登记主机", "the system has no registered hosts")
    reporting = set(ev.soc.hosts_reporting_24h)
    silent = [h for h in expected if h not in reporting]
    if not silent:
        return result(
            cid,
            Result.COMPLIANT,
            f"{len(expected)} 台主机 24 小时内均有日志",
            f"all {len(expected)} hosts reported in 24 h",
        )
    value = failing_share(len(silent), len(expected))
    return result(
        cid,
        value,
        f"{len(silent)}/{len(expected)} 台主机 24 小时无日志：{names(silent)}",
        f"{len(silent)}/{len(expected)} hosts silent for 24 h: {names(silent)}",
        silent=silent,
    )


@check("soc.retention_180d", "日志留存不少于 180 天", "Logs kept at least 180 days", "soc")
def retention_180d(ev: Evidence, ctx: CheckContext) -> CheckResult:
    cid = "soc.retention_180d"
    if ev.soc is None or ev.soc.retention_days is None:
        return missing(cid, "日志留存配置", "log retention setting")
    need = ctx.params.soc.min_retention_days
    if ev.soc.retention_days >= need:
        return result(
            cid,
            Result.COMPLIANT,
            f"日志留存 {ev.soc.retention_days} 天（≥{need}）",
            f"logs kept {ev.soc.retention_days} days (≥{need})",
            retention_days=ev.soc.retention_days,
        )
    return result(
        cid,
        Result.NON_COMPLIANT,
        f"日志仅留存 {ev.soc.retention_days} 天（须≥{need}）",
        f"logs kept only {ev.soc.retention_days} days (need ≥{need})",
        retention_days=ev.soc.retention_days,
    )


@check("soc.alert_sla", "告警按时处置", "Alerts handled within the SLA", "soc")
def alert_sla(ev: Evidence, ctx: CheckContext) -> CheckResult:
    cid = "soc.alert_sla"
    if ev.soc is None:
        return missing(cid, "告警处置记录", "alert handling records")
    over, total = ev.soc.alerts_over_sla, ev.soc.alerts_total
    if over <= ctx.params.soc.max_alerts_over_sla:
        return result(
            cid,
            Result.COMPLIANT,
            f"{total} 条告警均按时处置",
            f"all {total} alerts handled within the SLA",
            total=total,
        )
    value = Result.PARTIAL if over < total else Result.NON_COMPLIANT
    return result(
        cid,
        value,
        f"{over}/{total} 条告警超时未处置",
        f"{over}/{total} alerts past the SLA",
        total=total,
        over_sla=over,
    )


@check("soc.network_detection", "关键节点网络攻击检测", "Network attack detection at key nodes", "soc")
def network_detection(ev: Evidence, ctx: CheckContext) -> CheckResult:
    cid = "soc.network_detection"
    if ev.soc is None:
        return missing(cid, "态势感知检测状态", "SOC detection status")
    sources, rules = ev.soc.network_sources_reporting, ev.soc.network_rules_enabled
    enough_rules = rules >= max(ctx.params.soc.min_network_rules, 1)
    if sources and enough_rules:
        return result(
            cid,
            Result.COMPLIANT,
            f"边界日志在上报，{rules} 条网络攻击检测规则启用",
            f"boundary logs flowing, {rules} network rules on",
            rules=rules,
        )
    if sources or enough_rules:
        what_zh, what_en = (
            ("无边界设备日志", "no boundary device logs") if not sources else ("无网络攻击检测规则", "no network rules")
        )
        return result(cid, Result.PARTIAL, what_zh, what_en, rules=rules, sources=sources)
    return result(
        cid, Result.NON_COMPLIANT, "无边界日志，也无网络攻击检测规则", "no boundary logs and no network detection rules"
    )
