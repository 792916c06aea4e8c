"""Suggest a data class and public-data level from a data-catalog description, with the reasons that matched.

Rules live in ``rules.yaml``. Keywords are case-insensitive substrings (Chinese text has no word boundaries);
patterns are case-insensitive regular expressions for English descriptions. The suggestion takes the highest class
and level among the matched rules; a cap (e.g. anonymised data) then bounds the public-data level of general data.
It is a suggestion for the data owner and the reviewer, not a decision.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from inventory.vocabulary import vocabulary
from policies.classification.schemes import Schemes, default_schemes

RULES_FILE = Path(__file__).with_name("rules.yaml")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Default(_Strict):
    data_class: str
    public_data_level: str
    zh: str
    en: str


class Rule(_Strict):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    zh: str = Field(min_length=1)
    en: str = Field(min_length=1)
    source: str = Field(min_length=1)
    keywords: list[str] = Field(default_factory=list)
    patterns: list[str] = Field(default_factory=list)
    data_class: str | None = None
    public_data_level: str | None = None
    cap_public_data_level: str | None = None
    tags: list[str] = Field(default_factory=list)
    requires_tag: str | None = None

    @field_validator("patterns")
    @classmethod
    def _compiles(cls, value: list[str]) -> list[str]:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"pattern {pattern!r} does not compile: {exc}") from None
        return value

    @model_validator(mode="after")
    def _does_something(self) -> Rule:
        if not (self.keywords or self.patterns):
            raise ValueError("a rule needs keywords or patterns")
        if not (self.data_class or self.public_data_level or self.cap_public_data_level):
            raise ValueError("a rule needs data_class, public_data_level or cap_public_data_level")
        return self


class RuleSet(_Strict):
    default: Default
    rules: list[Rule] = Field(min_length=1)

    def check_codes(self, schemes: Schemes) -> None:
        """Every class and level code must exist in the schemes (the register's codes)."""
        seen: set[str] = set()
        tags = {t for r in self.rules for t in r.tags}
        for rule in [self.default, *self.rules]:
            name = getattr(rule, "id", "default")
            if name in seen:
                raise ValueError(f"rule {name} is defined twice")
            seen.add(name)
            if rule.data_class and rule.data_class not in schemes.data_class.levels:
                raise ValueError(
                    f"rule {name}: data_class '{rule.data_class}' is not one of {schemes.data_class.order}"
                )
            for field in ("public_data_level", "cap_public_data_level"):
                code = getattr(rule, field, None)
                if code and code not in schemes.public_data_level.levels:
                    raise ValueError(f"rule {name}: {field} '{code}' is not one of {schemes.public_data_level.order}")
            if isinstance(rule, Rule) and rule.requires_tag and rule.requires_tag not in tags:
                raise ValueError(f"rule {name}: requires_tag '{rule.requires_tag}' is carried by no rule")


@dataclass(frozen=True, slots=True)
class Reason:
    rule: str
    zh: str
    en: str
    source: str
    matched: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Suggestion:
    """Suggested register codes with labels and the reasons behind them."""

    data_class: str
    data_class_zh: str
    public_data_level: str
    public_data_level_zh: str
    reasons: tuple[Reason, ...]
    defaulted: bool  # no rule matched: the default was used

    def as_dict(self) -> dict[str, object]:
        return {
            "data_class": self.data_class,
            "data_class_zh": self.data_class_zh,
            "public_data_level": self.public_data_level,
            "public_data_level_zh": self.public_data_level_zh,
            "defaulted": self.defaulted,
            "reasons": [
                {"rule": r.rule, "zh": r.zh, "en": r.en, "source": r.source, "matched": list(r.matched)}
                for r in self.reasons
            ],
        }


class Classifier:
    """Rules compiled once; call :meth:`suggest` per description."""

    def __init__(self, rules: RuleSet, schemes: Schemes) -> None:
        rules.check_codes(schemes)
        self.rules = rules
        self.schemes = schemes
        self._compiled = [
            (r, [k.casefold() for k in r.keywords], [re.compile(p, re.IGNORECASE) for p in r.patterns])
            for r in rules.rules
        ]

    def suggest(self, description: str) -> Suggestion:
        if not isinstance(description, str) or not description.strip():
            raise ValueError("the description is empty: describe the data set (fields, subjects, scale, use)")
        text = description.casefold()
        hits: list[tuple[Rule, tuple[str, ...]]] = []
        for rule, keywords, patterns in self._compiled:
            matched = [k for k in keywords if k in text]
            matched += [m.group(0) for p in patterns if (m := p.search(description))]
            if matched:
                hits.append((rule, tuple(dict.fromkeys(matched))))
        tags = {t for rule, _ in hits for t in rule.tags}
        hits = [(r, m) for r, m in hits if r.requires_tag is None or r.requires_tag in tags]
        d, dc, pl = self.rules.default, self.schemes.data_class, self.schemes.public_data_level
        classes = [r.data_class for r, _ in hits if r.data_class] or [d.data_class]
        levels = [r.public_data_level for r, _ in hits if r.public_data_level] or [d.public_data_level]
        data_class, level = dc.highest(classes), pl.highest(levels)
        caps = [r.cap_public_data_level for r, _ in hits if r.cap_public_data_level]
        if caps and data_class == dc.order[0]:
            level = min([level, *caps], key=pl.rank)
        reasons = tuple(Reason(r.id, r.zh, r.en, r.source, m) for r, m in hits)
        if not reasons:
            reasons = (Reason("default", d.zh, d.en, "rules.yaml default", ()),)
        vocab = vocabulary()
        return Suggestion(
            data_class,
            vocab.label("data_class", data_class),
            level,
            vocab.label("public_data_level", level),
            reasons,
            not hits,
        )


def load_rules(path: Path = RULES_FILE, schemes: Schemes | None = None) -> Classifier:
    """Read and validate a rules file; errors name the file, the rule and the field."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        rules = RuleSet.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = list(err["loc"])
            if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
                with contextlib.suppress(KeyError, IndexError, AttributeError, TypeError):
                    loc[1] = f"{loc[1]} ({data['rules'][loc[1]].get('id', '?')})"
            problems.append(f"{'.'.join(map(str, loc)) or '(file)'}: {err['msg']}")
        raise ValueError(f"{path.name}: {'; '.join(problems)}") from None
    except yaml.YAMLError as exc:
        raise ValueError(f"{path.name}: not valid YAML ({exc})") from None
    try:
        return Classifier(rules, schemes or default_schemes())
    except ValueError as exc:
        raise ValueError(f"{path.name}: {exc}") from None


@cache
def default_classifier() -> Classifier:
    return load_rules()


def suggest_class(description: str) -> Suggestion:
    """Suggest a GB/T 43697 data class and a public-data level for a data-catalog description."""
    return default_classifier().suggest(description)
