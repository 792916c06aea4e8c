"""Plan-mode evaluation: every rule of the catalog over the planned resources, as a report."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from policies.cloud.catalog import RuleCatalog, default_catalog
from policies.cloud.checks import CHECKS
from policies.cloud.models import PlannedResource, PolicyReport, RuleMeta, RuleResult, Violation


def _violation(rule: RuleMeta, resource: PlannedResource | None, message: str) -> Violation:
    return Violation(rule_id=rule.id, severity=rule.severity, urn=resource.urn if resource else None,
                     resource=resource.name if resource else None, type=resource.type if resource else None,
                     message=message)


def run_rule(rule: RuleMeta, resources: list[PlannedResource]) -> list[Violation]:
    """The violations of one rule over the resources."""
    check = CHECKS[rule.check]
    if rule.scope == "resource":
        return [_violation(rule, r, msg) for r in resources if r.custom
                for msg in check(r, rule.params)]  # type: ignore[arg-type]
    return [_violation(rule, r, msg) for r, msg in check(resources, rule.params)]  # type: ignore[arg-type]


def evaluate(resources: Iterable[PlannedResource | Mapping[str, Any]],
             catalog: RuleCatalog | None = None) -> PolicyReport:
    """Run every rule; ``passed`` is False when a mandatory rule is broken."""
    planned = [r if isinstance(r, PlannedResource) else PlannedResource.model_validate(r) for r in resources]
    results = []
    for rule in (catalog or default_catalog()).rules:
        violations = run_rule(rule, planned)
        results.append(RuleResult(rule_id=rule.id, title=rule.title, severity=rule.severity,
                                  enforcement=rule.enforcement, mlps=rule.mlps, passed=not violations,
                                  violations=violations))
    return PolicyReport(
        passed=all(r.passed for r in results if r.enforcement == "mandatory"),
        checked_resources=sum(1 for r in planned if r.custom),
        violations=sum(len(r.violations) for r in results), results=results)
