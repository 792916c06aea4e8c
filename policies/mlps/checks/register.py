"""Register checks: grading record, filing, assessment, asset list and classification."""

from __future__ import annotations

from policies.mlps.checks import CheckContext, check, not_applicable, result
from policies.mlps.evidence import Evidence
from policies.mlps.results import CheckResult, Result


@check("register.grading_record", "定级记录完整且与等级一致", "Grading record present and consistent", "register")
def grading_record(ev: Evidence, ctx: CheckContext) -> CheckResult:
    cid = "register.grading_record"
    reg = ev.system
    if reg.grading_info_level is None or reg.grading_service_level is None:
        return result(
            cid, Result.NON_COMPLIANT, "台账缺少业务信息/系统服务定级记录", "the register lacks the grading record"
        )
    graded = max(reg.grading_info_level, reg.grading_service_level)
    facts = {
        "business_info": reg.grading_info_level,
        "system_service": reg.grading_service_level,
        "mlps_level": reg.mlps_level,
    }
    if graded != reg.mlps_level:
        return result(
            cid,
            Result.NON_COMPLIANT,
            f"定级记录得出第{graded}级，与登记的第{reg.mlps_level}级不一致",
            f"grading gives level {graded}, the register says {reg.mlps_level}",
            **facts,
        )
    return result(
        cid,
        Result.COMPLIANT,
        f"定级记录（业务信息 {reg.grading_info_level}、系统服务 {reg.grading_service_level}）与第{graded}级一致",
        f"grading record matches level {graded}",
        **facts,
    )


@check("register.filed", "已备案", "Filed with the public security bureau", "register")
def filed(ev: Evidence, ctx: CheckContext) -> CheckResult:
    cid = "register.filed"
    if ev.system.filing_no:
        return result(
            cid,
            Result.COMPLIANT,
            f"备案编号 {ev.system.filing_no}",
            f"filing number {ev.system.filing_no}",
            filing_no=ev.system.filing_no,
        )
    return result(cid, Result.NON_COMPLIANT, "台账无备案编号", "no filing number in the register")


@check("register.assessment_current", "等级测评按期开展", "等级测评 on schedule", "register")
def assessment_current(ev: Evidence, ctx: CheckContext) -> CheckResult:
    cid = "register.assessment_current"
    max_days = ctx.params.assessment.max_age_days.get(ev.system.mlps_level)
    if max_days is None:
        return not_applicable(
            cid, f"第{ev.system.mlps_level}级无测评周期要求", f"no assessment interval for level {ev.system.mlps_level}"
        )
    last = ev.system.last_assessment
    if last is None:
        return result(cid, Result.NON_COMPLIANT, "无等级测评记录", "no assessment on record")
    age = (ctx.as_of.date() - last).days
    if age > max_days:
        return result(
            cid,
            Result.NON_COMPLIANT,
            f"上次测评 {last}，已 {age} 天（须≤{max_days}）",
            f"last assessment {last}, {age} days ago (max {max_days})",
            last_assessment=last.isoformat(),
        )
    return result(
        cid,
        Result.COMPLIANT,
        f"上次测评 {last}（{age} 天前）",
        f"last assessment {last} ({age} days ago)",
        last_assessment=last.isoformat(),
    )


@check("register.asset_inventory", "资产清单完整", "Asset list complete", "register")
def asset_inventory(ev: Evidence, ctx: CheckContext) -> CheckResult:
    cid = "register.asset_inventory"
    reg = ev.system
    if not reg.owner or not reg.department:
        return result(
            cid, Result.NON_COMPLIANT, "台账缺少责任部门或负责人", "the register lacks the owner or department"
        )
    unroled = [h.name for h in reg.hosts if not h.role]
    if unroled:
        return result(
            cid, Result.PARTIAL, f"主机缺少角色：{', '.join(unroled)}", f"hosts without a role: {', '.join(unroled)}"
        )
    return result(
        cid,
        Result.COMPLIANT,
        f"责任部门 {reg.department}、负责人 {reg.owner}，{len(reg.hosts)} 台主机已登记",
        f"owner unit {reg.department}, owner {reg.owner}, {len(reg.hosts)} hosts registered",
        hosts=len(reg.hosts),
    )


@check("register.data_classified", "数据已分类分级", "Data classified", "register")
def data_classified(ev: Evidence, ctx: CheckContext) -> CheckResult:
    cid = "register.data_classified"
    reg = ev.system
    have = [x for x in (reg.data_class, reg.public_data_level) if x]
    if len(have) == 2:
        return result(
            cid,
            Result.COMPLIANT,
            f"数据级别 {reg.data_class}，公共数据分级 {reg.public_data_level}",
            f"data class {reg.data_class}, public-data level {reg.public_data_level}",
        )
    if have:
        return result(
            cid,
            Result.PARTIAL,
            "只登记了数据级别或公共数据分级之一",
            "only one of data class / public-data level is recorded",
        )
    return result(cid, Result.NON_COMPLIANT, "未登记数据分类分级", "no data classification recorded")
