"""Result values of the evaluation and what a check returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Result(StrEnum):
    """The five results of GB/T 28448 test units as used in 测评 reports (zh value, English name)."""

    COMPLIANT = "符合"
    PARTIAL = "部分符合"
    NON_COMPLIANT = "不符合"
    NOT_APPLICABLE = "不适用"
    PENDING = "待人工"

    @property
    def en(self) -> str:
        return _EN[self]


_EN = {
    Result.COMPLIANT: "compliant",
    Result.PARTIAL: "partially compliant",
    Result.NON_COMPLIANT: "non-compliant",
    Result.NOT_APPLICABLE: "not applicable",
    Result.PENDING: "pending auditor",
}


@dataclass(slots=True)  # not frozen: tens of thousands are built per run; treat as read-only
class CheckResult:
    """One automatic check's verdict on one system, with the facts it looked at and why."""

    check: str
    result: Result
    reason_zh: str
    reason_en: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "result": self.result.value,
            "result_en": self.result.en,
            "reason_zh": self.reason_zh,
            "reason_en": self.reason_en,
            "evidence": self.evidence,
        }
