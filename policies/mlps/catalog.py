"""The 等保 2.0 control catalog (GB/T 22239-2019, levels 2 and 3, general + cloud extension) loaded from YAML.

The YAML under ``catalog/`` holds one file per family and scenario. Each item may apply at several levels; its
clause letter and GB/T 28448 test-unit id are given per level (clause numbers and unit ids are not aligned across
levels). Loading validates every file with the pydantic models below and raises :class:`CatalogError` naming the
file, the control point, the item and the field.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

CATALOG_DIR = Path(__file__).with_name("catalog")

FAMILIES: dict[str, tuple[str, str]] = {
    "PES": ("安全物理环境", "Physical environment security"),
    "CNS": ("安全通信网络", "Communication network security"),
    "ABS": ("安全区域边界", "Area boundary security"),
    "CES": ("安全计算环境", "Computing environment security"),
    "SMC": ("安全管理中心", "Security management centre"),
    "PSS": ("安全管理制度", "Security policies and rules"),
    "ORS": ("安全管理机构", "Security organisation"),
    "HRS": ("安全管理人员", "Personnel security"),
    "CMS": ("安全建设管理", "Security construction management"),
    "MMS": ("安全运维管理", "Security operations management"),
}
SCENARIO_DIGIT = {"general": 1, "cloud": 2}  # GB/T 28448 附录C: 1 = 安全通用要求, 2 = 云计算扩展
LEVELS = (2, 3)

Level = Literal[2, 3]
Kind = Literal["auto", "evidence", "manual"]
CloudRole = Literal["platform", "customer"]
# Who a high-risk case applies to (S3 适用范围): every system, only systems with high business-continuity needs,
# only critical industries, or cloud platforms / cloud customers / both.
Scope = Literal["general", "business_continuity", "critical_industry", "cloud_platform", "cloud_customer", "cloud_any"]

CHECK_ID = re.compile(r"^(host|net|soc|infra|register|drills|crypto|k8s)\.[a-z0-9_]+$")
UNIT_ID = re.compile(r"^L(?P<level>[1-4])-(?P<family>[A-Z]{3})(?P<scenario>[1-5])-(?P<nn>\d{2})$")


class CatalogError(ValueError):
    """A catalog file is missing, unreadable or invalid; the message names file, item and field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Text(_Strict):
    zh: str = Field(min_length=1)
    en: str = Field(min_length=1)


class LevelRef(_Strict):
    """Where an item sits at one level: its letter (empty for an unlettered control point) and test-unit id."""

    letter: str = Field(pattern=r"^[a-j]?$")
    unit: str
    unit_inferred: bool = False  # † in the reference: inferred from the sequence, not printed in the source

    @field_validator("unit")
    @classmethod
    def _unit_format(cls, value: str) -> str:
        if not UNIT_ID.match(value):
            raise ValueError(f"'{value}' is not a GB/T 28448 test-unit id like L3-CES1-01")
        return value


class HighRisk(_Strict):
    """A case of the high-risk guide (高风险判定指引) that this item can trigger."""

    case: str = Field(pattern=r"^\d+(\.\d+){3}$")
    from_level: int = Field(ge=2, le=4)
    scope: Scope
    condition: Text


class Item(_Strict):
    id: str = Field(pattern=r"^[A-Z]{3}[12]\.[a-z_]+\.\d+$")
    refs: dict[Level, LevelRef] = Field(min_length=1)
    summary: Text
    kind: Kind
    checks: list[str] = Field(default_factory=list)
    advisory_checks: list[str] = Field(default_factory=list)  # shown with the result, never scored
    cloud_roles: list[CloudRole] | None = None
    high_risk: list[HighRisk] = Field(default_factory=list)

    @field_validator("checks", "advisory_checks")
    @classmethod
    def _check_ids(cls, value: list[str]) -> list[str]:
        for check in value:
            if not CHECK_ID.match(check):
                raise ValueError(f"'{check}' is not a check id like host.password_complexity")
        if len(set(value)) != len(value):
            raise ValueError("a check is listed twice")
        return value

    @model_validator(mode="after")
    def _kind_matches_checks(self) -> Item:
        if self.kind in ("auto", "evidence") and not self.checks:
            raise ValueError(f"kind '{self.kind}' needs at least one linked check")
        if self.kind == "manual" and self.checks:
            raise ValueError("kind 'manual' items cannot link scored checks (use advisory_checks)")
        for level, ref in self.refs.items():
            if int(UNIT_ID.match(ref.unit)["level"]) != level:  # type: ignore[index]
                raise ValueError(f"unit {ref.unit} is listed under level {level}")
        return self


class ControlPoint(_Strict):
    name: str = Field(min_length=1)
    name_en: str = Field(min_length=1)
    slug: str = Field(pattern=r"^[a-z_]+$")
    clauses: dict[Level, str] = Field(min_length=1)
    names_by_level: dict[Level, str] = Field(default_factory=dict)
    items: list[Item] = Field(min_length=1)

    @model_validator(mode="after")
    def _levels_and_letters(self) -> ControlPoint:
        for level in LEVELS:
            refs = [item.refs[level] for item in self.items if level in item.refs]
            if refs and level not in self.clauses:
                raise ValueError(f"items apply at level {level} but the control point has no level-{level} clause")
            if not refs and level in self.clauses:
                raise ValueError(f"level-{level} clause {self.clauses[level]} has no items")
            expected = [""] if len(refs) == 1 else [chr(ord("a") + i) for i in range(len(refs))]
            if [r.letter for r in refs] != expected:
                raise ValueError(f"level-{level} item letters {[r.letter for r in refs]} should be {expected}")
        return self

    def name_at(self, level: int) -> str:
        return self.names_by_level.get(level, self.name)  # type: ignore[call-overload]


class FamilyFile(_Strict):
    family: Literal["PES", "CNS", "ABS", "CES", "SMC", "PSS", "ORS", "HRS", "CMS", "MMS"]
    name: str
    name_en: str
    scenario: Literal["general", "cloud"]
    clauses: dict[Level, str] = Field(min_length=1)
    control_points: list[ControlPoint] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> FamilyFile:
        if self.name != FAMILIES[self.family][0]:
            raise ValueError(f"family {self.family} is {FAMILIES[self.family][0]}, not {self.name}")
        digit = SCENARIO_DIGIT[self.scenario]
        for cp in self.control_points:
            for level, clause in cp.clauses.items():
                prefix = self.clauses.get(level)
                if prefix is None or not clause.startswith(prefix + "."):
                    raise ValueError(
                        f"{cp.name}: clause {clause} is not under the family's level-{level} clause {prefix}"
                    )
            for item in cp.items:
                if not item.id.startswith(f"{self.family}{digit}."):
                    raise ValueError(f"{item.id}: item ids of this file start with {self.family}{digit}.")
                for ref in item.refs.values():
                    m = UNIT_ID.match(ref.unit)
                    assert m is not None
                    if m["family"] != self.family or int(m["scenario"]) != digit:
                        raise ValueError(f"{item.id}: unit {ref.unit} belongs to another family or scenario")
        for level in LEVELS:
            numbers = [
                int(UNIT_ID.match(item.refs[level].unit)["nn"])  # type: ignore[index]
                for cp in self.control_points
                for item in cp.items
                if level in item.refs
            ]
            if numbers != sorted(set(numbers)):
                raise ValueError(f"level-{level} test-unit numbers are not strictly increasing in file order")
        return self


@dataclass(frozen=True, slots=True)
class Requirement:
    """One catalog item as it applies at one level: what the evaluation and the report work with."""

    id: str
    level: int
    unit: str
    unit_inferred: bool
    clause: str
    letter: str
    family: str
    family_name: str
    scenario: str
    control_point: str
    control_point_en: str
    summary: Text
    kind: str
    checks: tuple[str, ...]
    advisory_checks: tuple[str, ...]
    cloud_roles: tuple[str, ...] | None
    high_risk: tuple[HighRisk, ...]

    @property
    def ref(self) -> str:
        """Clause with its item letter, e.g. ``8.1.4.1 a``."""
        return f"{self.clause} {self.letter}".strip()


class Catalog:
    """All family files, with the requirements of each level precomputed."""

    def __init__(self, files: dict[str, FamilyFile]) -> None:
        self.files = files
        self.requirements: dict[int, list[Requirement]] = {level: [] for level in LEVELS}
        for family_file in files.values():
            for cp in family_file.control_points:
                for item in cp.items:
                    for level, ref in item.refs.items():
                        self.requirements[level].append(
                            Requirement(
                                id=item.id,
                                level=level,
                                unit=ref.unit,
                                unit_inferred=ref.unit_inferred,
                                clause=cp.clauses[level],
                                letter=ref.letter,
                                family=family_file.family,
                                family_name=family_file.name,
                                scenario=family_file.scenario,
                                control_point=cp.name_at(level),
                                control_point_en=cp.name_en,
                                summary=item.summary,
                                kind=item.kind,
                                checks=tuple(item.checks),
                                advisory_checks=tuple(item.advisory_checks),
                                cloud_roles=tuple(item.cloud_roles) if item.cloud_roles else None,
                                high_risk=tuple(item.high_risk),
                            )
                        )
        for level in LEVELS:
            self.requirements[level].sort(key=lambda r: (r.scenario != "general", _unit_key(r.unit)))
        self._by_unit = {r.unit: r for reqs in self.requirements.values() for r in reqs}
        self._selection: dict[tuple[int, str | None], tuple[Requirement, ...]] = {}

    def for_system(self, level: int, cloud_role: str | None) -> tuple[Requirement, ...]:
        """Requirements for a system of ``level``; the cloud extension when ``cloud_role`` is platform/customer."""
        if level not in self.requirements:
            raise CatalogError(f"the catalog covers levels {', '.join(map(str, LEVELS))}; level {level} is not in it")
        key = (level, cloud_role)
        if key not in self._selection:
            self._selection[key] = tuple(
                r
                for r in self.requirements[level]
                if r.scenario == "general"
                or (cloud_role is not None and (r.cloud_roles is None or cloud_role in r.cloud_roles))
            )
        return self._selection[key]

    def by_unit(self, unit: str) -> Requirement:
        try:
            return self._by_unit[unit]
        except KeyError:
            raise CatalogError(f"no catalog item has test-unit id {unit}") from None

    def check_ids(self) -> set[str]:
        """Every check id the catalog links (scored or advisory)."""
        return {c for reqs in self.requirements.values() for r in reqs for c in (*r.checks, *r.advisory_checks)}

    def count(self, level: int, scenario: str, family: str | None = None, control_point: str | None = None) -> int:
        """How many requirement items apply at ``level`` (optionally within one family / control point)."""
        return sum(
            1
            for r in self.requirements[level]
            if r.scenario == scenario
            and (family is None or r.family == family)
            and (control_point is None or r.control_point == control_point)
        )


def _unit_key(unit: str) -> tuple[str, int, int]:
    m = UNIT_ID.match(unit)
    assert m is not None
    return (m["family"], int(m["scenario"]), int(m["nn"]))


def _describe(data: Any, loc: Sequence[int | str]) -> str:
    """A readable path for a pydantic error location, naming control points and items."""
    parts: list[str] = []
    node = data
    for key in loc:
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            parts.append(str(key))
            node = None
            continue
        if isinstance(key, int) and isinstance(node, dict):
            label = node.get("id") or node.get("name")
            parts[-1] = f"{parts[-1]}[{key}]" + (f" ({label})" if label else "")
        else:
            parts.append(str(key))
    return " → ".join(parts)


def _format(path: Path, root: Path, data: Any, exc: ValidationError) -> str:
    rel = path.relative_to(root) if path.is_relative_to(root) else path
    lines = [f"{rel}: invalid catalog file ({exc.error_count()} problem(s))"]
    for err in exc.errors():
        lines.append(f"  {_describe(data, err['loc']) or '(file)'}: {err['msg']}")
    return "\n".join(lines)


def load_family(path: Path, root: Path | None = None) -> FamilyFile:
    """Read and validate one family file."""
    root = root or path.parent
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CatalogError(f"{path}: cannot read ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise CatalogError(f"{path.relative_to(root)}: not valid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise CatalogError(f"{path.relative_to(root)}: expected a mapping at the top level")
    try:
        return FamilyFile.model_validate(data)
    except ValidationError as exc:
        raise CatalogError(_format(path, root, data, exc)) from None


def load_catalog(root: Path = CATALOG_DIR, known_checks: Iterable[str] | None = None) -> Catalog:
    """Load every ``*.yaml`` under ``root``; with ``known_checks``, every linked check must be one of them."""
    paths = sorted(root.rglob("*.yaml"))
    if not paths:
        raise CatalogError(f"{root}: no catalog files")
    files: dict[str, FamilyFile] = {}
    seen_family: dict[tuple[str, str], Path] = {}
    seen_items: dict[str, Path] = {}
    seen_units: dict[str, str] = {}
    for path in paths:
        family_file = load_family(path, root)
        rel = str(path.relative_to(root))
        key = (family_file.family, family_file.scenario)
        if key in seen_family:
            raise CatalogError(f"{rel}: {key[0]} ({key[1]}) is already defined in {seen_family[key].relative_to(root)}")
        seen_family[key] = path
        for cp in family_file.control_points:
            for item in cp.items:
                if item.id in seen_items:
                    raise CatalogError(
                        f"{rel}: item {item.id} is already defined in {seen_items[item.id].relative_to(root)}"
                    )
                seen_items[item.id] = path
                for ref in item.refs.values():
                    if ref.unit in seen_units:
                        raise CatalogError(
                            f"{rel}: item {item.id}: unit {ref.unit} is already used by {seen_units[ref.unit]}"
                        )
                    seen_units[ref.unit] = item.id
                if known_checks is not None:
                    unknown = set(item.checks + item.advisory_checks) - set(known_checks)
                    if unknown:
                        raise CatalogError(
                            f"{rel}: item {item.id}: checks: unknown check(s) {', '.join(sorted(unknown))}"
                        )
        files[rel] = family_file
    return Catalog(files)


@cache
def default_catalog() -> Catalog:
    """The shipped catalog, validated against the registered checks (read once)."""
    from policies.mlps.checks import REGISTRY

    return load_catalog(CATALOG_DIR, known_checks=REGISTRY.keys())
