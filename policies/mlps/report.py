"""Report data for 等保 evaluations: JSON- and CSV-ready plain data (zh-CN first, English beside). No signing here.

:func:`report_data` gives one system's full report (conclusion, 符合率, counts per result and per family, high-risk
problems, 重大风险隐患 candidates, every requirement with its evidence); :func:`csv_rows` flattens the requirement
table; :func:`overview_rows` gives one line per system for a list of systems.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from policies.mlps.catalog import FAMILIES
from policies.mlps.evaluate import HighRiskFinding, RequirementResult, SystemEvaluation
from policies.mlps.results import Result
from policies.mlps.scoring import CONCLUSION_EN, ScoringRules, default_scoring

CSV_COLUMNS: list[tuple[str, str]] = [
    ("unit", "测评单元 / Test unit"),
    ("clause", "条款 / Clause"),
    ("family", "安全类 / Family"),
    ("control_point", "控制点 / Control point"),
    ("requirement_zh", "要求（概述）"),
    ("requirement_en", "Requirement (summary)"),
    ("kind", "核查方式 / Kind"),
    ("result", "结果"),
    ("result_en", "Result"),
    ("decided_by", "判定来源 / Decided by"),
    ("reasons_zh", "依据"),
    ("reasons_en", "Reasons"),
    ("auditor", "测评人员 / Auditor"),
    ("answered_at", "核查时间 / Answered at"),
    ("note", "备注 / Note"),
    ("high_risk_cases", "高风险判例 / High-risk cases"),
]
KIND_ZH = {"auto": "自动核查", "evidence": "证据核查", "manual": "人工核查"}
DECIDED_ZH = {"checks": "自动核查", "auditor": "测评人员", "pending": "待人工"}


def _pct(rate: float | None) -> float | None:
    return None if rate is None else round(rate * 100, 2)


def _finding(f: HighRiskFinding) -> dict[str, Any]:
    return {
        "unit": f.unit,
        "item": f.item_id,
        "control_point": f.control_point,
        "case": f.case,
        "condition_zh": f.condition_zh,
        "condition_en": f.condition_en,
        "result": f.result.value,
        "result_en": f.result.en,
    }


def _requirement(row: RequirementResult) -> dict[str, Any]:
    req = row.requirement
    answer = row.answer
    return {
        "unit": req.unit,
        "unit_inferred": req.unit_inferred,
        "item": req.id,
        "clause": req.ref,
        "family": req.family,
        "family_zh": req.family_name,
        "scenario": req.scenario,
        "control_point": req.control_point,
        "control_point_en": req.control_point_en,
        "requirement_zh": req.summary.zh,
        "requirement_en": req.summary.en,
        "kind": req.kind,
        "result": row.result.value,
        "result_en": row.result.en,
        "decided_by": row.decided_by,
        "checks": [c.as_dict() for c in row.checks],
        "advisory": [c.as_dict() for c in row.advisory],
        "answer": None
        if answer is None
        else {
            "auditor": answer.auditor,
            "answered_at": answer.answered_at.isoformat(),
            "note": answer.note,
            "mitigated": answer.mitigated,
        },
        "high_risk": [_finding(f) for f in row.high_risk],
    }


def _families(evaluation: SystemEvaluation, scoring: ScoringRules) -> list[dict[str, Any]]:
    per: dict[tuple[str, str], Counter[Result]] = defaultdict(Counter)
    for row in evaluation.results:
        per[(row.requirement.scenario, row.requirement.family)][row.result] += 1
    out = []
    for (scenario, family), counts in per.items():
        out.append(
            {
                "family": family,
                "family_zh": FAMILIES[family][0],
                "family_en": FAMILIES[family][1],
                "scenario": scenario,
                "items": sum(counts.values()),
                "counts": {r.value: counts.get(r, 0) for r in Result},
                "rate_percent": _pct(scoring.rate_from_counts(counts)),
            }
        )
    return out


def report_data(
    evaluation: SystemEvaluation, scoring: ScoringRules | None = None, generated_at: datetime | None = None
) -> dict[str, Any]:
    """One system's report as plain data (``json.dumps`` ready)."""
    scoring = scoring or default_scoring()
    e = evaluation
    conclusion = (
        None
        if e.conclusion is None
        else {
            "zh": e.conclusion + ("（暂定，尚有待人工项）" if e.provisional else ""),
            "en": CONCLUSION_EN[e.conclusion] + (" (provisional: items await the auditor)" if e.provisional else ""),
            "value": e.conclusion,
            "provisional": e.provisional,
            "rule_source": e.conclusion_source,
        }
    )
    return {
        "report": {
            "title_zh": "网络安全等级保护测评结果（自动核查 + 人工核查）",
            "title_en": "Classified-protection (MLPS 2.0) evaluation",
            "template": scoring.template,
            "scoring_source": scoring.source,
            "weights_source": scoring.weights_source,
            "generated_at": (generated_at or datetime.now(UTC)).isoformat(),
            "evidence_as_of": e.as_of.isoformat(),
            "standard": "GB/T 22239-2019 / GB/T 28448-2019",
        },
        "system": {"id": e.system_id, "name": e.system_name, "level": e.level, "cloud_role": e.cloud_role},
        "conclusion": conclusion,
        "rate_percent": _pct(e.rate),
        "items": len(e.results),
        "counts": {r.value: e.counts.get(r, 0) for r in Result},
        "families": _families(e, scoring),
        "high_risks": [_finding(f) for f in e.high_risks],
        "major_hazards": [_finding(f) for f in e.major_hazards],
        "requirements": [_requirement(r) for r in e.results],
    }


def to_json(evaluation: SystemEvaluation, **kwargs: Any) -> str:
    """The report data as indented UTF-8 JSON (Chinese kept readable)."""
    return json.dumps(report_data(evaluation, **kwargs), ensure_ascii=False, indent=2)


def csv_rows(evaluation: SystemEvaluation) -> list[dict[str, str]]:
    """The requirement table, one row per requirement, keyed by the ``CSV_COLUMNS`` keys."""
    rows = []
    for row in evaluation.results:
        req, answer = row.requirement, row.answer
        reasons = [c for c in row.checks if c.result is not Result.NOT_APPLICABLE] or list(row.checks)
        rows.append(
            {
                "unit": req.unit,
                "clause": req.ref,
                "family": req.family_name,
                "control_point": req.control_point,
                "requirement_zh": req.summary.zh,
                "requirement_en": req.summary.en,
                "kind": f"{KIND_ZH[req.kind]} / {req.kind}",
                "result": row.result.value,
                "result_en": row.result.en,
                "decided_by": f"{DECIDED_ZH[row.decided_by]} / {row.decided_by}",
                "reasons_zh": "；".join(f"{c.check}: {c.reason_zh}" for c in reasons),
                "reasons_en": "; ".join(f"{c.check}: {c.reason_en}" for c in reasons),
                "auditor": answer.auditor if answer else "",
                "answered_at": answer.answered_at.isoformat() if answer else "",
                "note": answer.note if answer else "",
                "high_risk_cases": " ".join(f.case for f in row.high_risk),
            }
        )
    return rows


def to_csv(evaluation: SystemEvaluation) -> str:
    """The requirement table as CSV text with bilingual headers (open in a spreadsheet; UTF-8 with BOM)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([header for _, header in CSV_COLUMNS])
    for row in csv_rows(evaluation):
        writer.writerow([row[key] for key, _ in CSV_COLUMNS])
    return "\ufeff" + buffer.getvalue()


def overview_rows(evaluations: Iterable[SystemEvaluation]) -> list[dict[str, Any]]:
    """One line per system: level, 符合率, conclusion, high risks, pending items."""
    return [
        {
            "system_id": e.system_id,
            "name": e.system_name,
            "level": e.level,
            "rate_percent": _pct(e.rate),
            "conclusion": e.conclusion,
            "conclusion_en": e.conclusion_en,
            "provisional": e.provisional,
            "high_risks": len(e.high_risks),
            "major_hazards": len(e.major_hazards),
            "pending": e.counts.get(Result.PENDING, 0),
            "non_compliant": e.counts.get(Result.NON_COMPLIANT, 0),
        }
        for e in evaluations
    ]
