"""Specs from the register and IPAM on the sample city, planned end to end."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

import pytest
from sqlalchemy.orm import Session

from core.runtime import Runtime
from core.settings import NetSettings
from infra.cloud.from_register import (
    cloud_network_code,
    image_name,
    k8s_spec,
    request_for_system,
    system_spec,
    tenant_spec,
)
from infra.cloud.plan import plan
from inventory.ipam import IpamAllocation
from tests.conftest import load_sample, make_runtime

NET = NetSettings(ipv6_block="2001:db8::/32")
TICKET = "TKT-2026-0100"


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    runtime = make_runtime(tmp_path_factory.mktemp("city") / "var")
    load_sample(runtime)
    yield runtime
    runtime.close()


@pytest.fixture
def session(city: Runtime) -> Iterator[Session]:
    with city.transaction() as s:
        yield s


def test_tenant_spec_from_the_register_and_ipam(session: Session) -> None:
    spec = tenant_spec(session, "ZFB", TICKET, "198.18.33.0/24", NET)
    assert (spec.department, spec.ticket_id, spec.system_id) == ("ZFB", TICKET, "shared")
    assert spec.mlps_level == 3 and spec.data_class == "important"  # highest among ZFB's cloud systems
    v6 = ipaddress.IPv6Network(spec.ipv6_cidr)
    assert v6.prefixlen == 64 and v6.subnet_of(ipaddress.IPv6Network(NET.ipv6_block))
    assert not v6.overlaps(ipaddress.IPv6Network("2001:db8:1000::/48"))  # a prefix the register records
    stored = session.query(IpamAllocation).filter_by(kind="network", owner=cloud_network_code("ZFB")).one()
    assert stored.value == spec.ipv6_cidr
    assert tenant_spec(session, "ZFB", TICKET, "198.18.33.0/24", NET).ipv6_cidr == spec.ipv6_cidr  # stable
    assert spec.management_cidrs == ["198.18.4.0/22"]  # 运维管理与堡垒机地址


def test_tenant_spec_rejects_what_the_register_does_not_know(session: Session) -> None:
    with pytest.raises(ValueError, match="unknown department 'NOPE'"):
        tenant_spec(session, "NOPE", TICKET, "198.18.33.0/24", NET)
    with pytest.raises(ValueError, match="inside no IPv4 prefix"):
        tenant_spec(session, "ZFB", TICKET, "10.0.0.0/24", NET)


def test_system_spec_from_hosts(session: Session) -> None:
    spec = system_spec(session, "SYS-ZFB-002", TICKET)
    assert (spec.department, spec.mlps_level, spec.data_class) == ("ZFB", 3, "important")
    assert [(i.name, i.role) for i in spec.instances] == [("zfb-12345zwf-app01", "app"), ("zfb-12345zwf-db01", "db"),
                                                          ("zfb-12345zwf-web01", "web")]  # bastion left out
    assert [(v.attach_to, v.size_gb) for v in spec.volumes] == [("zfb-12345zwf-db01", 200)]
    assert image_name("Kylin V10 SP3") == "kylin-v10-sp3"
    with pytest.raises(ValueError, match="decommissioned"):
        system_spec(session, "SYS-WXB-003", TICKET)
    with pytest.raises(ValueError, match="unknown system"):
        system_spec(session, "SYS-NOPE-001", TICKET)


def test_request_from_the_register_plans_clean(session: Session) -> None:
    request = request_for_system(session, "SYS-ZFB-002", TICKET, "198.18.33.0/24", NET,
                                 ingress=[{"protocol": "tcp", "port_min": 443, "remote_cidr": "198.18.0.0/15"}])
    out = plan(request)
    assert out["mode"] == "plan" and out["applied"] is False and out["admissible"] is True
    types = [r["type"] for r in out["resources"]]
    assert types.count("openstack:compute/instance:Instance") == 3
    assert types.count("openstack:blockstorage/volumeTypeV3:VolumeTypeV3") == 1  # level 3: encrypted
    (v6,) = [r for r in out["resources"] if r["type"].endswith(":Subnet") and r["properties"]["ipVersion"] == 6]
    assert v6["properties"]["cidr"] == request.tenant.ipv6_cidr  # type: ignore[union-attr]


def test_migrating_system_raises_the_tenant_baseline(session: Session) -> None:
    assert tenant_spec(session, "STHJJ", TICKET, "198.18.34.0/24", NET).mlps_level == 2  # its cloud systems
    request = request_for_system(session, "SYS-STHJJ-001", TICKET, "198.18.34.0/24", NET)  # level 3, local IDC
    assert request.tenant is not None and request.tenant.mlps_level == 3
    assert request.tenant.data_class == "important"
    out = plan(request)
    (baseline,) = [r for r in out["resources"] if r["type"].endswith(":SecGroup") and r["name"].endswith("baseline")]
    assert baseline["properties"]["deleteDefaultRules"] is True  # the level-3 baseline


def test_k8s_spec_from_the_register(session: Session) -> None:
    spec = k8s_spec(session, "GAJ", TICKET)
    assert (spec.namespace, spec.group, spec.mlps_level) == ("ys-gaj", "dept-gaj", 3)
    assert spec.pod_security == "restricted"
    out = plan({"k8s": [spec.model_dump()]})
    assert out["admissible"] is True and out["stack"] == "gaj"
    assert k8s_spec(session, "GAJ", TICKET, namespace="gaj-video").namespace == "gaj-video"
