"""The cloud program: a :class:`CloudRequest` turned into components. Plan mode and the Automation API both run
exactly this function."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi

from infra.cloud.k8s import K8sTenant
from infra.cloud.specs import CloudRequest
from infra.cloud.system import SystemStack
from infra.cloud.tenant import DepartmentTenant


@dataclass
class Program:
    """The components one request produced."""

    tenant: DepartmentTenant | None = None
    systems: list[SystemStack] = field(default_factory=list)
    k8s: list[K8sTenant] = field(default_factory=list)


def program(request: CloudRequest) -> Program:
    """Build the components of ``request`` in the current Pulumi program (real or mocked)."""
    out = Program()
    dept = request.department.lower()
    if request.tenant is not None:
        out.tenant = DepartmentTenant(f"tenant-{dept}", request.tenant)
        pulumi.export("project_id", out.tenant.project_id)
        pulumi.export("network_id", out.tenant.network_id)
    for spec in request.systems:
        if out.tenant is not None:
            project_id, network_id = out.tenant.project_id, out.tenant.network_id
            groups: list[pulumi.Input[str]] = [*out.tenant.security_group_ids, *spec.security_group_ids]
        else:  # validated: an existing tenant is named
            project_id, network_id = spec.project_id, spec.network_id  # type: ignore[assignment]
            groups = list(spec.security_group_ids)
        out.systems.append(SystemStack(f"system-{spec.system_id.lower()}", spec, project_id, network_id, groups))
    for spec in request.k8s:
        out.k8s.append(K8sTenant(f"k8s-{spec.namespace}", spec))
    return out
