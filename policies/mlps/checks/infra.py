"""Infrastructure checks over the Pulumi plan/state and backup records."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from policies.mlps.checks import CheckContext, check, failing_share, missing, names, not_applicable, result
from policies.mlps.evidence import Evidence
from policies.mlps.results import CheckResult, Result


@check("infra.volume_encryption", "存储卷加密", "Volumes encrypted", "infra")
def volume_encryption(ev: Evidence, ctx: CheckContext) -> CheckResult:
    cid = "infra.volume_encryption"
    if ev.infra is None:
        return missing(cid, "云资源（存储卷）证据", "infrastructure (volume) evidence")
    vols = ev.infra.volumes
    if not vols:
        return not_applicable(cid, "系统无块存储卷", "the system has no volumes")
    plain = [v.name for v in vols if not v.encrypted]
    if not plain:
        return result(cid, Result.COMPLIANT, f"{len(vols)} 个存储卷均已加密", f"all {len(vols)} volumes encrypted")
    value = failing_share(len(plain), len(vols))
    return result(
        cid,
        value,
        f"{len(plain)}/{len(vols)} 个存储卷未加密：{names(plain)}",
        f"{len(plain)}/{len(vols)} volumes unencrypted: {names(plain)}",
        unencrypted=plain,
    )


@check("infra.backup_recent", "备份策略与近期备份", "Backup policy and a recent backup", "infra")
def backup_recent(ev: Evidence, ctx: CheckContext) -> CheckResult:
    cid = "infra.backup_recent"
    if ev.infra is None or ev.infra.backups is None:
        return missing(cid, "备份记录", "backup records")
    b = ev.infra.backups
    if not b.policy:
        return result(
            cid, Result.NON_COMPLIANT, "未定义备份策略（频度、保存期）", "no backup policy (schedule, retention)"
        )
    limit = timedelta(hours=ctx.params.backup.max_age_hours)
    if b.last_backup_at is None or ctx.as_of - b.last_backup_at > limit:
        when = b.last_backup_at.isoformat() if b.last_backup_at else "无"
        return result(
            cid,
            Result.PARTIAL,
            f"有备份策略，但最近一次备份过旧（{when}）",
            f"policy set but the last backup is stale ({when})",
            last_backup_at=when,
        )
    return result(
        cid,
        Result.COMPLIANT,
        "备份策略已定义，最近备份在时限内",
        "backup policy set and the last backup is recent",
        last_backup_at=b.last_backup_at.isoformat(),
    )


@check("infra.offsite_backup", "异地备份（第三级须实时）", "Off-site backup (real-time at level 3)", "infra")
def offsite_backup(ev: Evidence, ctx: CheckContext) -> CheckResult:
    cid = "infra.offsite_backup"
    if ev.infra is None or ev.infra.backups is None:
        return missing(cid, "备份记录", "backup records")
    b = ev.infra.backups
    if not b.offsite:
        return result(cid, Result.NON_COMPLIANT, "无异地备份", "no off-site backup", offsite=False)
    if ctx.level >= 3 and not b.offsite_realtime:
        return result(
            cid,
            Result.PARTIAL,
            "有异地备份，但非实时（第三级要求实时）",
            "off-site backup exists but is not real-time (level 3)",
            offsite=True,
            realtime=False,
        )
    return result(
        cid,
        Result.COMPLIANT,
        "异地备份满足本级要求",
        "off-site backup meets the level",
        offsite=True,
        realtime=b.offsite_realtime,
    )


@check("infra.customer_local_copy", "云服务客户本地保存备份", "Cloud customer keeps a local backup copy", "infra")
def customer_local_copy(ev: Evidence, ctx: CheckContext) -> CheckResult:
    cid = "infra.customer_local_copy"
    if ev.infra is None or ev.infra.backups is None:
        return missing(cid, "备份记录", "backup records")
    if ev.infra.backups.local_copy:
        return result(cid, Result.COMPLIANT, "业务数据备份在本地另存一份", "a copy of the backups is kept locally")
    return result(cid, Result.NON_COMPLIANT, "业务数据备份仅存于云上", "backups exist only inside the cloud")


@check("infra.redundancy", "关键设备冗余", "Redundant instances per role", "infra")
def redundancy(ev: Evidence, ctx: CheckContext) -> CheckResult:
    cid = "infra.redundancy"
    if ev.infra is None:
        return missing(cid, "云资源（实例）证据", "instance evidence")
    roles = Counter(i.role or "unspecified" for i in ev.infra.instances if i.in_register)
    if not roles:
        return missing(cid, "实例清单", "the instance list")
    single = sorted(r for r, n in roles.items() if n < 2)
    if not single:
        return result(
            cid,
            Result.COMPLIANT,
            f"全部 {len(roles)} 个角色均有冗余实例",
            f"all {len(roles)} roles are redundant",
            roles=dict(roles),
        )
    value = failing_share(len(single), len(roles))
    return result(
        cid, value, f"以下角色只有单实例：{names(single)}", f"single-instance roles: {names(single)}", roles=dict(roles)
    )


@check("infra.restore_tested", "恢复演练", "Restore tested within the year", "infra")
def restore_tested(ev: Evidence, ctx: CheckContext) -> CheckResult:
    cid = "infra.restore_tested"
    if ev.infra is None or ev.infra.backups is None:
        return missing(cid, "备份记录", "backup records")
    at = ev.infra.backups.last_restore_test_at
    limit = timedelta(days=ctx.params.backup.restore_test_max_age_days)
    if at is None or ctx.as_of - at > limit:
        return result(
            cid,
            Result.NON_COMPLIANT,
            f"近 {limit.days} 天未做恢复测试",
            f"no restore test in {limit.days} days",
            last_restore_test_at=at.isoformat() if at else None,
        )
    return result(
        cid, Result.COMPLIANT, "恢复测试在时限内", "restore tested recently", last_restore_test_at=at.isoformat()
    )


@check("infra.in_china", "基础设施及运维位于境内", "Infrastructure and operations inside China", "infra")
def in_china(ev: Evidence, ctx: CheckContext) -> CheckResult:
    cid = "infra.in_china"
    if ev.infra is None or ev.infra.country is None:
        return missing(cid, "基础设施所在地", "the infrastructure location")
    allowed = set(ctx.params.location.countries)
    abroad = sorted({c for c in [ev.infra.country, *ev.infra.ops_countries] if c not in allowed})
    if abroad:
        return result(
            cid,
            Result.NON_COMPLIANT,
            f"基础设施或运维位于境外：{', '.join(abroad)}",
            f"infrastructure or operations abroad: {', '.join(abroad)}",
            country=ev.infra.country,
            ops_countries=ev.infra.ops_countries,
        )
    return result(
        cid,
        Result.COMPLIANT,
        f"基础设施位于 {ev.infra.country}（{ev.infra.region or '—'}），运维在境内",
        f"infrastructure in {ev.infra.country} ({ev.infra.region or '-'}), operated domestically",
        country=ev.infra.country,
    )


@check("infra.tenant_isolation", "租户网络隔离", "Tenant networks isolated", "infra")
def tenant_isolation(ev: Evidence, ctx: CheckContext) -> CheckResult:
    cid = "infra.tenant_isolation"
    if ev.infra is None or ev.infra.isolated_tenant_network is None:
        return missing(cid, "租户网络证据", "tenant network evidence")
    if ev.infra.isolated_tenant_network:
        return result(
            cid,
            Result.COMPLIANT,
            "系统网络为本部门独享并与其他租户隔离",
            "networks are the department's own, isolated from other tenants",
        )
    return result(cid, Result.NON_COMPLIANT, "系统网络与其他部门共享", "networks shared with other departments")


@check("infra.exposure_approved", "互联网暴露经审批", "Internet exposure approved", "infra")
def exposure_approved(ev: Evidence, ctx: CheckContext) -> CheckResult:
    cid = "infra.exposure_approved"
    if ev.infra is None:
        return missing(cid, "云资源（实例）证据", "instance evidence")
    exposed = [i for i in ev.infra.instances if i.floating_ip]
    unapproved = [i.name for i in exposed if not i.exposure_approved]
    if unapproved:
        return result(
            cid,
            Result.NON_COMPLIANT,
            f"未经审批的公网暴露：{names(unapproved)}",
            f"unapproved public exposure: {names(unapproved)}",
            unapproved=unapproved,
        )
    return result(
        cid,
        Result.COMPLIANT,
        f"{len(exposed)} 个公网暴露实例均经审批",
        f"all {len(exposed)} exposed instances approved",
    )


@check("infra.platform_level", "云平台等级不低于系统等级", "Cloud platform level at least the system's", "infra")
def platform_level(ev: Evidence, ctx: CheckContext) -> CheckResult:
    cid = "infra.platform_level"
    if ev.system.effective_cloud_role is None:
        return not_applicable(cid, "系统不在云上", "the system is not on a cloud")
    if ev.infra is None or ev.infra.platform_mlps_level is None:
        return missing(cid, "云平台等级", "the cloud platform's level")
    lp, ls = ev.infra.platform_mlps_level, ev.system.mlps_level
    if lp < ls:
        return result(
            cid,
            Result.NON_COMPLIANT,
            f"云平台为第{lp}级，低于系统的第{ls}级",
            f"platform level {lp} below system level {ls}",
            platform_level=lp,
            system_level=ls,
        )
    return result(
        cid,
        Result.COMPLIANT,
        f"云平台第{lp}级，不低于系统第{ls}级",
        f"platform level {lp} ≥ system level {ls}",
        platform_level=lp,
        system_level=ls,
    )


@check("infra.drift_free", "无未登记的虚拟机", "No unregistered instances", "infra")
def drift_free(ev: Evidence, ctx: CheckContext) -> CheckResult:
    cid = "infra.drift_free"
    if ev.infra is None:
        return missing(cid, "云资源（实例）证据", "instance evidence")
    rogue = [i.name for i in ev.infra.instances if not i.in_register]
    if rogue:
        return result(
            cid,
            Result.NON_COMPLIANT,
            f"云上存在未登记/计划外的实例：{names(rogue)}",
            f"instances outside the register/plan: {names(rogue)}",
            rogue=rogue,
        )
    return result(cid, Result.COMPLIANT, "云上实例与登记一致", "instances match the register")
