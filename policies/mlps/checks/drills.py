"""Drill checks over the SOC's drill records (应急演练)."""

from __future__ import annotations

from policies.mlps.checks import CheckContext, check, missing, result
from policies.mlps.evidence import Evidence
from policies.mlps.results import CheckResult, Result


@check("drills.annual_emergency_drill", "每年至少一次应急演练", "At least one emergency drill a year", "drills")
def annual_emergency_drill(ev: Evidence, ctx: CheckContext) -> CheckResult:
    cid = "drills.annual_emergency_drill"
    if ev.drills is None:
        return missing(cid, "演练记录", "drill records")
    limit = ctx.params.drills.max_interval_days
    today = ctx.as_of.date()
    recent = sorted(
        d.held_on for d in ev.drills.drills if d.kind == "emergency" and 0 <= (today - d.held_on).days <= limit
    )
    if recent:
        return result(
            cid,
            Result.COMPLIANT,
            f"最近一次应急演练 {recent[-1]}",
            f"last emergency drill on {recent[-1]}",
            last=recent[-1].isoformat(),
        )
    return result(cid, Result.NON_COMPLIANT, f"近 {limit} 天无应急演练", f"no emergency drill in {limit} days")


@check("drills.findings_closed", "演练发现已整改闭环", "Drill findings closed", "drills")
def findings_closed(ev: Evidence, ctx: CheckContext) -> CheckResult:
    cid = "drills.findings_closed"
    if ev.drills is None:
        return missing(cid, "演练记录", "drill records")
    if not ev.drills.drills:
        return result(
            cid,
            Result.NON_COMPLIANT,
            "无演练记录，无法证明预案经评估修订",
            "no drills on record to show plans are re-evaluated",
        )
    total = sum(d.findings_total for d in ev.drills.drills)
    open_ = sum(d.findings_open for d in ev.drills.drills)
    if open_ == 0:
        return result(
            cid, Result.COMPLIANT, f"{total} 项演练发现均已闭环", f"all {total} drill findings closed", total=total
        )
    value = Result.PARTIAL if open_ < total else Result.NON_COMPLIANT
    return result(
        cid,
        value,
        f"{open_}/{total} 项演练发现未闭环",
        f"{open_}/{total} drill findings still open",
        total=total,
        open=open_,
    )
