"""Retro-hunting: run a Sigma rule over stored history, in the store's own query language."""

from __future__ import annotations

from soc.detect.loader import CompiledRule, ecs_pipeline, load_texts
from soc.store.base import EventStore, SearchQuery, SearchResult


def rule_from_text(text: str, pipeline: str = "none") -> CompiledRule:
    """One detection rule from YAML (``pipeline="ecs"`` maps SigmaHQ field names); ValueError says what is wrong."""
    ruleset = load_texts([("rule.yml", text)], ecs_pipeline() if pipeline == "ecs" else None)
    if ruleset.errors:
        raise ValueError(f"the rule does not load: {ruleset.errors[0].reason}")
    if len(ruleset.rules) != 1 or ruleset.correlations:
        raise ValueError("give exactly one detection rule (correlations cannot be hunted over history this way)")
    return ruleset.rules[0]


def hunt(store: EventStore, rule: CompiledRule, query: SearchQuery) -> SearchResult:
    """The stored events matching ``rule`` within the range and department scope of ``query``."""
    if rule.sigma is None:
        raise ValueError(f"rule {rule.id} has no parsed form to translate")
    return store.hunt(rule.sigma, query)
