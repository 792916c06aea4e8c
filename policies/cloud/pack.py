"""The same checks wrapped for pulumi_policy (CrossGuard). Nothing is built at import: ``build_policies`` makes the
policy objects, ``serve_policy_pack`` constructs the PolicyPack — which starts the analyzer server and blocks, so
it is only for the policy-pack entry point (``pulumi preview --policy-pack``), never for tests or libraries."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from policies.cloud.catalog import RuleCatalog, default_catalog
from policies.cloud.checks import CHECKS
from policies.cloud.models import PlannedResource, RuleMeta

PACK_NAME = "yunshu-mlps-cloud"
FRAMEWORK = ("GB/T 22239-2019", "2019")


def _resource_of(res: Any) -> PlannedResource:
    parent = getattr(res, "parent", None)
    return PlannedResource(urn=res.urn, type=res.resource_type, name=res.name, props=dict(res.props or {}),
                           id=(res.props or {}).get("id"), parent=parent.urn if parent is not None else None,
                           dependencies=[d.urn for d in getattr(res, "dependencies", None) or []])


def resource_validator(rule: RuleMeta) -> Callable[[Any, Callable[..., None]], None]:
    """A CrossGuard resource validation callback running the rule's check."""
    check = CHECKS[rule.check]

    def validate(args: Any, report_violation: Callable[..., None]) -> None:
        for message in check(_resource_of(args), rule.params):  # type: ignore[arg-type]
            report_violation(message)

    return validate


def stack_validator(rule: RuleMeta) -> Callable[[Any, Callable[..., None]], None]:
    """A CrossGuard stack validation callback running the rule's check over all resources."""
    check = CHECKS[rule.check]

    def validate(args: Any, report_violation: Callable[..., None]) -> None:
        resources = [_resource_of(r) for r in args.resources]
        for resource, message in check(resources, rule.params):  # type: ignore[arg-type]
            report_violation(message, resource.urn if resource is not None else None)

    return validate


def build_policies(catalog: RuleCatalog | None = None) -> list[Any]:
    """pulumi_policy ResourceValidationPolicy / StackValidationPolicy objects, one per rule."""
    import pulumi_policy as pp

    policies: list[Any] = []
    for rule in (catalog or default_catalog()).rules:
        common: dict[str, Any] = {
            "name": rule.id.lower(), "description": f"{rule.description.zh} / {rule.description.en}",
            "display_name": f"{rule.title.zh} / {rule.title.en}",
            "enforcement_level": pp.EnforcementLevel(rule.enforcement), "severity": pp.Severity(rule.severity),
            "tags": ["等保2.0", "mlps"],
        }
        if rule.mlps is not None:
            common["framework"] = pp.PolicyComplianceFramework(
                name=FRAMEWORK[0], version=FRAMEWORK[1], reference=f"{rule.mlps.clause} {rule.mlps.control}")
        if rule.scope == "resource":
            policies.append(pp.ResourceValidationPolicy(validate=resource_validator(rule), **common))
        else:
            policies.append(pp.StackValidationPolicy(validate=stack_validator(rule), **common))
    return policies


def serve_policy_pack(catalog: RuleCatalog | None = None) -> Any:  # pragma: no cover - blocks forever
    """Construct the PolicyPack (starts the CrossGuard analyzer server; call only from a pack's __main__.py)."""
    import pulumi_policy as pp

    return pp.PolicyPack(PACK_NAME, policies=build_policies(catalog),
                         enforcement_level=pp.EnforcementLevel.MANDATORY)
