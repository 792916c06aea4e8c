"""Load Sigma rules from files and folders with pySigma, map their fields, compile them, and name every failure."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import yaml
from sigma.collection import SigmaCollection
from sigma.correlations import SigmaCorrelationRule, SigmaCorrelationType
from sigma.exceptions import SigmaError
from sigma.processing.pipeline import ProcessingPipeline
from sigma.rule import SigmaRule

from soc.detect.compiler import (
    CompileError,
    Gate,
    Predicate,
    any_of,
    compile_condition,
    literal_gate,
    required_fields,
)

BUILTIN_RULES = Path(__file__).resolve().parent.parent / "rules"
ECS_PIPELINE = Path(__file__).with_name("ecs_pipeline.yml")
SUPPORTED_CORRELATIONS = {
    SigmaCorrelationType.EVENT_COUNT, SigmaCorrelationType.VALUE_COUNT, SigmaCorrelationType.TEMPORAL,
    SigmaCorrelationType.TEMPORAL_ORDERED,
}


@dataclass(frozen=True)
class LoadError:
    """A rule (or a whole file) that could not be loaded, and why."""

    path: str
    title: str | None
    reason: str


@dataclass(eq=False)
class CompiledRule:
    """A detection rule ready to evaluate."""

    id: str
    title: str
    level: str
    tags: tuple[str, ...]
    logsource: tuple[str | None, str | None, str | None]  # product, category, service
    predicate: Predicate
    required: frozenset[str]
    path: str
    name: str | None = None
    generate: bool = True  # False: only feeds correlations (referenced by one and not marked generate)
    description: str = ""
    sigma: SigmaRule | None = None  # the parsed rule (fields already mapped), for retro-hunts in a store
    gate: Gate | None = None  # literals the rule needs (see compiler.literal_gate), for the prefilter

    @property
    def attack(self) -> tuple[str, ...]:
        """ATT&CK tags without the namespace: technique ids (t1110.001) and tactic names (credential_access)."""
        return tuple(t.split(".", 1)[1] for t in self.tags if t.startswith("attack."))


@dataclass(eq=False)
class CompiledCorrelation:
    """A Sigma correlation rule over compiled base rules."""

    id: str
    title: str
    level: str
    tags: tuple[str, ...]
    type: str  # event_count | value_count | temporal | temporal_ordered
    rules: tuple[CompiledRule | CompiledCorrelation, ...]  # base rules, or correlations it chains on
    group_by: tuple[str, ...]
    aliases: dict[str, dict[str, str]]  # alias → {base rule id → field}
    timespan_s: float
    op: str | None  # lt lte gt gte eq neq (None for temporal types)
    count: int | None
    field: str | None  # value_count: the field whose distinct values are counted
    path: str
    name: str | None = None
    generate: bool = True


@dataclass
class RuleSet:
    """What loading produced: the rules, the correlations and every failure with its reason."""

    rules: list[CompiledRule] = field(default_factory=list)
    correlations: list[CompiledCorrelation] = field(default_factory=list)
    errors: list[LoadError] = field(default_factory=list)

    @property
    def loaded(self) -> int:
        return len(self.rules) + len(self.correlations)

    @property
    def total(self) -> int:
        return self.loaded + len(self.errors)


def rule_files(paths: Iterable[Path | str]) -> list[Path]:
    """The ``.yml``/``.yaml`` files named or found (recursively, sorted) under the given paths."""
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.suffix in (".yml", ".yaml") and p.is_file())
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"no such rule file or folder: {path}")
    return files


@cache
def ecs_pipeline() -> ProcessingPipeline:
    """The processing pipeline mapping SigmaHQ field names to the ECS names of Yunshu's events."""
    return ProcessingPipeline.from_yaml(ECS_PIPELINE.read_text(encoding="utf-8"))


def _title(rule: SigmaRule | SigmaCorrelationRule) -> str | None:
    return getattr(rule, "title", None)


def _rule_id(rule: SigmaRule | SigmaCorrelationRule) -> str:
    """The rule's id; without one its name; without either a UUID derived from its title (not the title itself,
    which could equal another rule's name and feed that rule's correlations)."""
    if rule.id:
        return str(rule.id)
    return rule.name or str(uuid.uuid5(uuid.NAMESPACE_URL, f"yunshu-sigma-title:{rule.title}"))


def _reason(exc: Exception) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if isinstance(exc, SigmaError) else text


def _compile_rule(rule: SigmaRule, pipeline: ProcessingPipeline | None, path: str) -> CompiledRule:
    if pipeline is not None:
        rule = copy.deepcopy(rule)
        pipeline.apply(rule)
    trees = [condition.parsed for condition in rule.detection.parsed_condition]
    predicates = [compile_condition(tree) for tree in trees]
    required = frozenset.intersection(*(required_fields(tree) for tree in trees)) if trees else frozenset()
    gates = [literal_gate(tree) for tree in trees]
    gate: Gate | None = None
    if gates and all(gates):
        gate = {}
        for g in gates:
            for target, needles in g.items():  # type: ignore[union-attr]
                gate[target] = gate.get(target, frozenset()) | needles
    predicate: Predicate = predicates[0] if len(predicates) == 1 else any_of(predicates)
    ls = rule.logsource
    return CompiledRule(
        id=_rule_id(rule), title=rule.title, level=str(rule.level or "medium").lower(),
        tags=tuple(f"{t.namespace}.{t.name}".lower() for t in rule.tags),
        logsource=(ls.product, ls.category, ls.service), predicate=predicate, required=required, path=path,
        name=rule.name, description=rule.description or "", sigma=rule, gate=gate)


def _compile_correlation(corr: SigmaCorrelationRule, compiled: dict[int, CompiledRule | CompiledCorrelation],
                         pipeline: ProcessingPipeline | None, path: str) -> CompiledCorrelation:
    if corr.type not in SUPPORTED_CORRELATIONS:
        raise CompileError(f"correlation type {corr.type} is not supported (event_count, value_count, temporal, "
                           "temporal_ordered are)")
    bases: list[CompiledRule | CompiledCorrelation] = []
    for ref in corr.rules:  # resolved on the rule as loaded: the pipeline's copy below refers to copies of its rules
        target = getattr(ref, "rule", None)
        base = compiled.get(id(target)) if target is not None else None
        if base is None:
            raise CompileError(f"referenced rule {ref.reference!r} is not loaded")
        bases.append(base)
    if pipeline is not None:  # field names (group-by, aliases, value_count's field) as the pipeline maps them
        corr = copy.deepcopy(corr)
        pipeline.apply(corr)
    condition = corr.condition
    if condition is not None and not hasattr(condition, "op"):
        raise CompileError("extended (boolean) correlation conditions are not supported")
    aliases: dict[str, dict[str, str]] = {}
    by_reference = {key: base.id for base in bases for key in (base.id, base.name) if key}
    for alias in (corr.aliases.aliases.values() if corr.aliases else []):
        unknown = [ref.reference for ref in alias.mapping if ref.reference not in by_reference]
        if unknown:
            raise CompileError(f"alias {alias.alias!r} maps rules the correlation does not use: {unknown}")
        aliases[alias.alias] = {by_reference[ref.reference]: fld for ref, fld in alias.mapping.items()}
    op = condition.op.name.lower() if condition is not None else None
    return CompiledCorrelation(
        id=_rule_id(corr), title=corr.title, level=str(corr.level or "medium").lower(),
        tags=tuple(f"{t.namespace}.{t.name}".lower() for t in corr.tags), type=str(corr.type),
        rules=tuple(bases), group_by=tuple(corr.group_by or ()), aliases=aliases,
        timespan_s=float(corr.timespan.seconds), op=op, count=condition.count if condition is not None else None,
        field=getattr(condition, "fieldref", None), path=path, name=corr.name)


def load_rules(paths: Sequence[Path | str], pipeline: ProcessingPipeline | None = None) -> RuleSet:
    """Load every rule under ``paths``; failures are collected in ``RuleSet.errors`` with their reason.

    ``pipeline`` (e.g. :func:`ecs_pipeline`) renames fields before compilation; without it rules see the field
    names as the events have them.
    """
    return load_texts(((str(f), f.read_bytes()) for f in rule_files(paths)), pipeline)


def load_texts(sources: Iterable[tuple[str, bytes | str]], pipeline: ProcessingPipeline | None = None) -> RuleSet:
    """Load rules from (name, YAML text) pairs; correlations may reference rules of any of them."""
    result = RuleSet()
    found: list[tuple[SigmaRule | SigmaCorrelationRule, str]] = []
    for name, raw in sources:
        try:
            text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
            collection = SigmaCollection.from_yaml(text, collect_errors=True, resolve_references=False)
        except (SigmaError, ValueError, UnicodeDecodeError, yaml.YAMLError) as exc:
            result.errors.append(LoadError(name, None, _reason(exc)))
            continue
        except (AttributeError, TypeError):  # pySigma takes each YAML document for a mapping
            result.errors.append(LoadError(name, None, "not a Sigma rule: each YAML document must be a mapping"))
            continue
        for rule in collection.rules:
            if rule.errors:
                result.errors.append(LoadError(name, _title(rule), "; ".join(_reason(e) for e in rule.errors)))
            else:
                found.append((rule, name))
    collection = SigmaCollection([rule for rule, _ in found], resolve_references=False)
    paths_by_rule = {id(rule): path for rule, path in found}
    correlations: list[SigmaCorrelationRule] = []
    compiled: dict[int, CompiledRule] = {}
    for rule, path in found:
        if isinstance(rule, SigmaCorrelationRule):
            correlations.append(rule)
            continue
        try:
            compiled[id(rule)] = _compile_rule(rule, pipeline, path)
        except (SigmaError, CompileError, ValueError) as exc:
            result.errors.append(LoadError(path, rule.title, _reason(exc)))
    feeding: set[int] = set()
    known: dict[int, CompiledRule | CompiledCorrelation] = dict(compiled)
    pending: list[SigmaCorrelationRule] = []
    for corr in correlations:
        try:
            corr.resolve_rule_references(collection)
            pending.append(corr)
        except (SigmaError, ValueError) as exc:
            result.errors.append(LoadError(paths_by_rule[id(corr)], corr.title, _reason(exc)))
    while pending:  # correlations may chain on correlations: compile those whose references are ready
        ready = [c for c in pending
                 if all(not isinstance(ref.rule, SigmaCorrelationRule) or id(ref.rule) in known for ref in c.rules)]
        if not ready:
            for corr in pending:
                result.errors.append(LoadError(paths_by_rule[id(corr)], corr.title,
                                               "correlation references form a cycle or a correlation that failed"))
            break
        for corr in ready:
            pending.remove(corr)
            path = paths_by_rule[id(corr)]
            try:
                compiled_corr = _compile_correlation(corr, known, pipeline, path)
            except (SigmaError, CompileError, ValueError) as exc:
                result.errors.append(LoadError(path, corr.title, _reason(exc)))
                continue
            known[id(corr)] = compiled_corr
            result.correlations.append(compiled_corr)
            if not corr.generate:  # Sigma: what a correlation references only feeds it, unless it says generate
                feeding.update(id(ref.rule) for ref in corr.rules)
    for key, rule in compiled.items():
        rule.generate = key not in feeding
        result.rules.append(rule)
    for corr_rule in correlations:
        done = known.get(id(corr_rule))
        if isinstance(done, CompiledCorrelation):
            done.generate = id(corr_rule) not in feeding
    return result
