"""Remediation for 不符合 / 部分符合 requirements: suggestions kept as data (remediation.yaml), and a remediation
ticket opened from a failed item (portal.tickets, type ``remediation``, 等保整改)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict

REMEDIATION_FILE = Path(__file__).with_name("remediation.yaml")
FAILED = ("不符合", "部分符合")


class Text(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    zh: str
    en: str


class Suggestions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    checks: dict[str, Text]
    families: dict[str, Text]
    default: Text


@cache
def suggestions() -> Suggestions:
    """The validated suggestions (every check id must exist)."""
    from policies.mlps.checks import REGISTRY

    data = Suggestions.model_validate(yaml.safe_load(REMEDIATION_FILE.read_text(encoding="utf-8")))
    unknown = sorted(set(data.checks) - set(REGISTRY))
    if unknown:
        raise ValueError(f"{REMEDIATION_FILE.name}: unknown check ids {unknown}")
    return data


def suggestion_for(requirement: dict[str, Any]) -> dict[str, str] | None:
    """The suggestion for one requirement of ``report_data`` (None unless it failed)."""
    if requirement["result"] not in FAILED:
        return None
    data = suggestions()
    texts = [data.checks[c["check"]] for c in requirement.get("checks", [])
             if c["result"] in FAILED and c["check"] in data.checks]
    if not texts:
        texts = [data.families.get(requirement["family"], data.default)]
    return {"zh": "；".join(dict.fromkeys(t.zh for t in texts)), "en": "; ".join(dict.fromkeys(t.en for t in texts))}


def add_suggestions(report: dict[str, Any]) -> dict[str, Any]:
    """Put ``remediation`` on every failed requirement of a report (in place; returns it)."""
    for req in report["requirements"]:
        req["remediation"] = suggestion_for(req)
    return report


REMEDIATION_TICKET_TYPE = "remediation"


def stored_requirement(session: Any, system_id: str, evaluation_id: int, unit: str) -> dict[str, Any]:
    """The requirement ``unit`` of the stored evaluation ``evaluation_id`` of ``system_id`` (LookupError if none)."""
    from portal.compliance.models import EvaluationRun
    from portal.compliance.store import run_report

    run = session.get(EvaluationRun, evaluation_id)
    if run is None or run.system_id != system_id:
        raise LookupError(f"no evaluation #{evaluation_id} of {system_id} / 无此测评记录")
    for req in run_report(run)["requirements"]:
        if req["unit"] == unit:
            return req
    raise LookupError(f"unit {unit} is not a requirement of evaluation #{evaluation_id} of {system_id}")


def remediation_ticket_fields(report: dict[str, Any], unit: str) -> dict[str, Any]:
    """The ticket (portal.tickets ``TicketIn`` shape, type ``remediation``) that asks for one failed requirement of
    a stored evaluation to be remediated; ``compliance`` carries the evaluation, unit, clause, finding and
    suggestion."""
    system = report["system"]
    found = [r for r in report["requirements"] if r["unit"] == unit]
    if not found:
        raise ValueError(f"unit {unit}: not a requirement of system {system['id']}'s evaluation")
    req = found[0]
    if req["result"] not in FAILED:
        raise ValueError(f"unit {unit} is {req['result']} ({req['result_en']}): only 不符合 / 部分符合 items are "
                         "remediated")
    evaluation_id = (report.get("report") or {}).get("evaluation_id")
    if not evaluation_id:
        raise ValueError("the report is not a stored evaluation (no evaluation_id): evaluate the system first")
    hint = req.get("remediation") or suggestion_for(req) or {"zh": "", "en": ""}
    failed = [c for c in req.get("checks", []) if c["result"] in FAILED]
    reasons = "；".join(f"{c['check']}: {c['reason_zh']}" for c in failed)
    if req.get("answer") and not failed:
        reasons = f"测评人员 {req['answer']['auditor']}：{req['answer']['note'] or req['result']}"
    finding = f"{req['clause']} {req['control_point']}：{req['result']}。{reasons}".strip()
    return {
        "type": REMEDIATION_TICKET_TYPE,
        "title": f"等保整改 {unit} {req['control_point']} / MLPS remediation {unit}"[:200],
        "system": system["id"],
        "justification": (f"{finding}\n建议 / Suggestion: {hint['zh']} / {hint['en']}")[:10_000],
        "data_catalog_id": f"mlps-{unit}",
        "compliance": {"evaluation_id": int(evaluation_id), "unit": unit, "clause": str(req.get("clause") or "")[:64],
                       "control_point": str(req.get("control_point") or "")[:128], "result": req["result"],
                       "finding": finding[:4000], "suggestion_zh": hint["zh"][:2000],
                       "suggestion_en": hint["en"][:2000],
                       "checks": [c["check"] for c in req.get("checks", [])][:64]},
    }


def open_remediation_ticket(session: Any, audit: Any, actor: Any, report: dict[str, Any], unit: str, *,
                            submit: bool = False) -> Any:
    """Open a 等保整改 ticket for a 不符合 / 部分符合 item of a stored evaluation: a draft for the department to
    complete and submit, or submitted at once (admission → security review) when ``submit``."""
    from portal.tickets.service import create

    fields = remediation_ticket_fields(report, unit)
    department = report["system"].get("department")
    return create(session, audit, actor, {**fields, "department": department}, submit=submit)
