"""Registry of automatic checks: plain functions ``(Evidence, CheckContext) -> CheckResult``.

Register with :func:`check`; the catalog links checks by id (``host.password_complexity`` …). A check never fails
for lack of evidence: a missing evidence section gives 待人工 with the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from policies.mlps.evidence import Evidence, HostFacts
from policies.mlps.params import CheckParams, default_params
from policies.mlps.results import CheckResult, Result


@dataclass(frozen=True, slots=True)
class CheckContext:
    """What a check may use besides the evidence: level, "now", parameters and a memo (one context per system)."""

    level: int
    as_of: datetime = field(default_factory=lambda: datetime.now(UTC))
    params: CheckParams = field(default_factory=default_params)
    memo: dict[str, Any] = field(default_factory=dict)  # per-system scratch space shared by the checks


CheckFn = Callable[[Evidence, CheckContext], CheckResult]


@dataclass(frozen=True, slots=True)
class CheckSpec:
    id: str
    fn: CheckFn
    title_zh: str
    title_en: str
    source: str  # evidence section it reads: register / hosts / infra / soc / drills / crypto / k8s


REGISTRY: dict[str, CheckSpec] = {}


def check(check_id: str, title_zh: str, title_en: str, source: str) -> Callable[[CheckFn], CheckFn]:
    """Decorator registering an automatic check under ``check_id``."""

    def _register(fn: CheckFn) -> CheckFn:
        if check_id in REGISTRY:
            raise ValueError(f"check {check_id} is registered twice")
        REGISTRY[check_id] = CheckSpec(check_id, fn, title_zh, title_en, source)
        return fn

    return _register


def run_check(check_id: str, evidence: Evidence, ctx: CheckContext) -> CheckResult:
    """Run one registered check (unknown ids raise KeyError naming the id)."""
    try:
        spec = REGISTRY[check_id]
    except KeyError:
        raise KeyError(f"no check named {check_id}") from None
    return spec.fn(evidence, ctx)


# --- helpers shared by the check modules -----------------------------------------------------------------------


def result(check_id: str, value: Result, zh: str, en: str, **evidence: Any) -> CheckResult:
    return CheckResult(check_id, value, zh, en, evidence)


def missing(check_id: str, what_zh: str, what_en: str) -> CheckResult:
    """待人工 because the evidence was not collected."""
    return CheckResult(
        check_id, Result.PENDING, f"未采集到{what_zh}，需人工核查", f"{what_en} not collected; auditor to verify"
    )


def failing_share(failing: int, total: int) -> Result:
    """部分符合 when only some of ``total`` fail, 不符合 when all do (``failing`` > 0)."""
    return Result.PARTIAL if failing < total else Result.NON_COMPLIANT


def not_applicable(check_id: str, zh: str, en: str) -> CheckResult:
    return CheckResult(check_id, Result.NOT_APPLICABLE, zh, en)


@dataclass(slots=True)  # not frozen: built per host and check; treat as read-only
class Verdict:
    """One host's verdict: ``ok`` and, when not ok, what is wrong (with the facts that show it)."""

    ok: bool
    zh: str = ""
    en: str = ""
    facts: dict[str, Any] = field(default_factory=dict)


PASS = Verdict(True)  # the verdict of a passing host (the facts of passing hosts are not kept)

HostJudge = Callable[[HostFacts, CheckContext], Verdict | None]


def per_host(check_id: str, evidence: Evidence, ctx: CheckContext, judge: HostJudge) -> CheckResult:
    """Judge every host; all pass → 符合, some → 部分符合, none → 不符合; unknown hosts → 待人工 unless one failed.

    ``judge`` returns None when the fact it needs was not gathered on that host. Hosts in the register without
    facts count as unknown.
    """
    if evidence.hosts is None:
        return missing(check_id, "主机配置证据", "host facts")
    without_facts = ctx.memo.get("hosts_without_facts")
    if without_facts is None:  # the same for every host check of this system: work it out once
        registered = {h.name for h in evidence.system.hosts}
        without_facts = ctx.memo["hosts_without_facts"] = sorted(registered - {h.name for h in evidence.hosts})
        ctx.memo["no_hosts"] = not evidence.hosts and not registered
    if ctx.memo["no_hosts"]:
        return not_applicable(check_id, "系统无主机（不涉及主机层面）", "the system has no hosts")
    passed: list[str] = []
    failed: dict[str, Verdict] = {}
    unknown = list(without_facts)
    for facts in evidence.hosts:
        verdict = judge(facts, ctx)
        if verdict is None:
            unknown.append(facts.name)
        elif verdict.ok:
            passed.append(facts.name)
        else:
            failed[facts.name] = verdict
    used: dict[str, Any] = {
        "passed": passed,
        "unknown": unknown,
        "failed": {name: v.facts for name, v in failed.items()},
    }
    if failed:
        detail_zh = "；".join(f"{n}：{v.zh}" for n, v in list(failed.items())[:5])
        detail_en = "; ".join(f"{n}: {v.en}" for n, v in list(failed.items())[:5])
        total = len(passed) + len(failed) + len(unknown)
        value = Result.PARTIAL if passed else Result.NON_COMPLIANT
        return result(
            check_id,
            value,
            f"{len(failed)}/{total} 台主机不满足（{detail_zh}）",
            f"{len(failed)}/{total} host(s) fail ({detail_en})",
            **used,
        )
    if unknown:
        return result(
            check_id,
            Result.PENDING,
            f"{len(unknown)} 台主机未采集到相关配置：{', '.join(unknown[:5])}",
            f"{len(unknown)} host(s) without the needed facts: {', '.join(unknown[:5])}",
            **used,
        )
    return result(
        check_id, Result.COMPLIANT, f"全部 {len(passed)} 台主机满足", f"all {len(passed)} host(s) pass", **used
    )


def names(items: Iterable[str], limit: int = 5) -> str:
    items = list(items)
    more = f" …(+{len(items) - limit})" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


# Register the checks (imports at the end so the modules can use the helpers above).
from policies.mlps.checks import crypto, drills, host, infra, k8s, network, register, soc  # noqa: E402, F401
