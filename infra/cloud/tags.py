"""How the government labels are written on resources: OpenStack tag strings, metadata maps, Kubernetes labels."""

from __future__ import annotations

from infra.cloud.specs import GovLabels

TAG_KEYS = ("system_id", "department", "mlps_level", "data_class", "ticket_id")
MANAGED_BY = ("managed_by", "yunshu")
K8S_PREFIX = "yunshu/"


def metadata(labels: GovLabels, **extra: str) -> dict[str, str]:
    """Key/value metadata (volumes, instances): the five labels, who manages it, and ``extra``."""
    out = {key: str(getattr(labels, key)) for key in TAG_KEYS}
    out[MANAGED_BY[0]] = MANAGED_BY[1]
    out.update(extra)
    return out


def openstack_tags(labels: GovLabels, **extra: str) -> list[str]:
    """Tag strings ``key=value`` for resources that take a tag list (projects, networks, routers, groups …)."""
    return [f"{k}={v}" for k, v in metadata(labels, **extra).items()]


def k8s_labels(labels: GovLabels, **extra: str) -> dict[str, str]:
    """Kubernetes labels ``yunshu/system-id`` … plus ``app.kubernetes.io/managed-by``."""
    out = {f"{K8S_PREFIX}{key.replace('_', '-')}": str(getattr(labels, key)) for key in TAG_KEYS}
    out["app.kubernetes.io/managed-by"] = "yunshu"
    out.update(extra)
    return out
