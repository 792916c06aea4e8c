"""Remediation for 不符合 / 部分符合 requirements: suggestions kept as data (remediation.yaml), and a remediation
ticket opened from a failed item (portal.tickets, type ``change``)."""

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


class RemediationTicketUnavailable(RuntimeError):
    """The ticket policy has no remediation ticket type yet."""


def remediation_ticket_fields(report: dict[str, Any], unit: str) -> dict[str, Any]:
    """The ticket (portal.tickets ``TicketIn`` shape) that asks for one failed requirement to be remediated."""
    system = report["system"]
    found = [r for r in report["requirements"] if r["unit"] == unit]
    if not found:
        raise ValueError(f"unit {unit}: not a requirement of system {system['id']}'s evaluation")
    req = found[0]
    if req["result"] not in FAILED:
        raise ValueError(f"unit {unit} is {req['result']} ({req['result_en']}): only 不符合 / 部分符合 items are "
                         "remediated")
    hint = req.get("remediation") or suggestion_for(req) or {"zh": "", "en": ""}
    reasons = "；".join(f"{c['check']}: {c['reason_zh']}" for c in req.get("checks", []) if c["result"] in FAILED)
    return {
        "type": REMEDIATION_TICKET_TYPE,
        "title": f"等保整改 {unit} {req['control_point']} / MLPS remediation {unit}"[:200],
        "system": system["id"],
        "justification": (f"{req['clause']} {req['control_point']}：{req['result']}。{reasons}\n"
                          f"建议 / Suggestion: {hint['zh']} / {hint['en']}")[:10_000],
        "data_catalog_id": f"mlps-{unit}",
    }


def open_remediation_ticket(session: Any, audit: Any, actor: Any, report: dict[str, Any], unit: str) -> Any:
    """Open a remediation ticket for a 不符合 item (draft, for the department to complete and submit).

    Hook: portal/tickets/policy.yaml has no ``remediation`` type yet; until it does this raises
    :class:`RemediationTicketUnavailable` naming the line to add."""
    from portal.tickets.schema import ticket_policy
    from portal.tickets.service import create

    fields = remediation_ticket_fields(report, unit)
    if REMEDIATION_TICKET_TYPE not in ticket_policy().types:
        raise RemediationTicketUnavailable(
            "no 'remediation' ticket type in portal/tickets/policy.yaml; add under types: "
            "remediation: {zh: 等保整改, en: MLPS remediation, system: existing, resources: false, expiry: false}")
    department = report["system"].get("department")
    return create(session, audit, actor, {**fields, "department": department}, submit=False)
