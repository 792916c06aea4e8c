"""Role-based access control: which roles hold which permission, and department scoping."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import yaml
from pydantic import BaseModel, model_validator

from portal.models import ROLES

RBAC_FILE = Path(__file__).with_name("rbac.yaml")


class RoleInfo(BaseModel):
    zh: str
    en: str
    scope: str


class Policy(BaseModel):
    roles: dict[str, RoleInfo]
    permissions: dict[str, list[str]]

    @model_validator(mode="after")
    def _known_roles(self) -> Policy:
        if set(self.roles) != set(ROLES):
            raise ValueError(f"rbac.yaml roles {sorted(self.roles)} differ from the model's {sorted(ROLES)}")
        for perm, roles in self.permissions.items():
            unknown = set(roles) - set(ROLES)
            if unknown:
                raise ValueError(f"permission {perm} names unknown roles {sorted(unknown)}")
        for name, info in self.roles.items():
            if info.scope not in ("department", "all"):
                raise ValueError(f"role {name}: scope must be 'department' or 'all'")
        return self

    def allows(self, role: str, permission: str) -> bool:
        if permission not in self.permissions:
            raise KeyError(f"unknown permission '{permission}'")
        return role in self.permissions[permission]

    def department_scoped(self, role: str) -> bool:
        return self.roles[role].scope == "department"


@cache
def policy() -> Policy:
    """The validated RBAC policy (read once)."""
    return Policy.model_validate(yaml.safe_load(RBAC_FILE.read_text(encoding="utf-8")))
