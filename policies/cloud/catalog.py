"""The rule catalog: ``rules.yaml`` read and validated (ids unique, every check known)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, model_validator

from policies.cloud.checks import CHECKS
from policies.cloud.models import RuleMeta

RULES_FILE = Path(__file__).with_name("rules.yaml")


class RuleCatalog(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    rules: list[RuleMeta]

    @model_validator(mode="after")
    def _consistent(self) -> RuleCatalog:
        ids = [r.id for r in self.rules]
        duplicated = sorted({i for i in ids if ids.count(i) > 1})
        if duplicated:
            raise ValueError(f"rule ids repeat: {', '.join(duplicated)}")
        unknown = [f"{r.id}: {r.check}" for r in self.rules if r.check not in CHECKS]
        if unknown:
            raise ValueError(f"unknown check function(s): {', '.join(unknown)}")
        return self

    def get(self, rule_id: str) -> RuleMeta:
        """The rule with this id (KeyError naming it when absent)."""
        for rule in self.rules:
            if rule.id == rule_id:
                return rule
        raise KeyError(f"no cloud policy rule {rule_id}")


def load_catalog(path: Path = RULES_FILE) -> RuleCatalog:
    """Read and validate a rules file; ValueError naming the file and what is wrong."""
    try:
        return RuleCatalog.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except (OSError, yaml.YAMLError, ValueError) as exc:
        raise ValueError(f"{path}: invalid cloud policy rules: {exc}") from exc


@cache
def default_catalog() -> RuleCatalog:
    return load_catalog()
