"""DepartmentTenant: a department's OpenStack project with quotas, a dual-stack network, a router and the
baseline security groups of its 等保 level."""

from __future__ import annotations

import ipaddress

import pulumi
import pulumi_openstack as openstack

from infra.cloud.baselines import BaselineRule, Baselines, default_baselines
from infra.cloud.specs import TenantSpec
from infra.cloud.tags import openstack_tags

PROTOCOL_FAMILY = {"icmp": 4, "ipv6-icmp": 6}


def remote_prefixes(spec: TenantSpec, remote: str) -> list[str]:
    """The prefixes a baseline remote keyword stands for in this tenant (may be empty: the rule is skipped)."""
    if remote == "tenant":
        return [spec.ipv4_cidr, spec.ipv6_cidr]
    if remote == "management":
        return list(spec.management_cidrs)
    if remote == "soc":
        return list(spec.soc_collectors)
    if remote == "dns":
        return [str(ipaddress.ip_network(a)) for a in spec.dns_nameservers]
    if remote == "any":
        return ["0.0.0.0/0", "::/0"]
    raise ValueError(f"unknown baseline remote '{remote}'")


def expand_rule(spec: TenantSpec, rule: BaselineRule) -> list[dict[str, object]]:
    """One baseline rule as provider rule arguments, one per matching prefix and address family."""
    out = []
    for prefix in remote_prefixes(spec, rule.remote):
        family = ipaddress.ip_network(prefix).version
        if PROTOCOL_FAMILY.get(rule.protocol, family) != family:
            continue
        args: dict[str, object] = {"direction": rule.direction, "ethertype": f"IPv{family}",
                                   "remote_ip_prefix": prefix}
        if rule.protocol != "any":
            args["protocol"] = rule.protocol
        if rule.ports is not None:
            args["port_range_min"], args["port_range_max"] = rule.ports
        out.append(args)
    return out


class DepartmentTenant(pulumi.ComponentResource):
    """Project + quotas, network with an IPv4 and an IPv6 subnet, router with both interfaces, baseline groups."""

    project_id: pulumi.Output[str]
    network_id: pulumi.Output[str]
    security_group_ids: list[pulumi.Output[str]]

    def __init__(self, name: str, spec: TenantSpec, baselines: Baselines | None = None,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("yunshu:cloud:DepartmentTenant", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = openstack_tags(spec.labels)
        base = spec.project_name

        project = openstack.identity.Project(
            f"{name}-project", name=base, domain_id=spec.domain_id, tags=tags,
            description=spec.description or f"Yunshu tenant of {spec.department}", opts=child)
        pid = project.id
        q = spec.quota
        openstack.compute.QuotaSetV2(
            f"{name}-quota-compute", project_id=pid, cores=q.cores, ram=q.ram_mb, instances=q.instances,
            opts=child)
        openstack.networking.QuotaV2(
            f"{name}-quota-network", project_id=pid, network=q.networks, subnet=q.subnets, router=q.routers,
            port=q.ports, floatingip=q.floating_ips, security_group=q.security_groups,
            security_group_rule=q.security_group_rules, opts=child)
        openstack.blockstorage.QuoteSetV3(
            f"{name}-quota-volume", project_id=pid, volumes=q.volumes, gigabytes=q.gigabytes,
            snapshots=q.snapshots, opts=child)

        network = openstack.networking.Network(
            f"{name}-net", name=f"{base}-net", tenant_id=pid, admin_state_up=True, port_security_enabled=True,
            tags=tags, opts=child)
        v4_dns = [a for a in spec.dns_nameservers if ipaddress.ip_address(a).version == 4]
        v6_dns = [a for a in spec.dns_nameservers if ipaddress.ip_address(a).version == 6]
        subnet_v4 = openstack.networking.Subnet(
            f"{name}-subnet-v4", name=f"{base}-v4", network_id=network.id, tenant_id=pid, ip_version=4,
            cidr=spec.ipv4_cidr, enable_dhcp=True, dns_nameservers=v4_dns, tags=tags, opts=child)
        v6 = ipaddress.IPv6Network(spec.ipv6_cidr)
        # Stateful DHCPv6: hosts keep the stable addresses IPAM gives them (::10, ::11 …); ::1 is the gateway.
        subnet_v6 = openstack.networking.Subnet(
            f"{name}-subnet-v6", name=f"{base}-v6", network_id=network.id, tenant_id=pid, ip_version=6,
            cidr=spec.ipv6_cidr, gateway_ip=str(v6.network_address + 1), ipv6_address_mode="dhcpv6-stateful",
            ipv6_ra_mode="dhcpv6-stateful", enable_dhcp=True, dns_nameservers=v6_dns, tags=tags, opts=child)

        router = openstack.networking.Router(
            f"{name}-router", name=f"{base}-router", tenant_id=pid, admin_state_up=True,
            external_network_id=spec.external_network_id, tags=tags, opts=child)
        for family, subnet in (("v4", subnet_v4), ("v6", subnet_v6)):
            openstack.networking.RouterInterface(
                f"{name}-router-if-{family}", router_id=router.id, subnet_id=subnet.id, opts=child)

        profile = (baselines or default_baselines()).for_level(spec.mlps_level)
        self.security_group_ids = []
        for group in profile.groups:
            sg = openstack.networking.SecGroup(
                f"{name}-sg-{group.name}", name=f"{base}-{group.name}", tenant_id=pid,
                description=f"{group.description} [{profile.name}]", delete_default_rules=group.restrict_egress,
                tags=tags, opts=child)
            self.security_group_ids.append(sg.id)
            index = 0
            for rule in group.rules:
                for args in expand_rule(spec, rule):
                    index += 1
                    openstack.networking.SecGroupRule(
                        f"{name}-sg-{group.name}-{index}", security_group_id=sg.id, tenant_id=pid,
                        description=f"baseline {profile.name} ticket={spec.ticket_id}", opts=child,
                        **args)  # type: ignore[arg-type]

        self.project_id = pid
        self.network_id = network.id
        self.register_outputs({"project_id": pid, "network_id": network.id, "subnet_v4_id": subnet_v4.id,
                               "subnet_v6_id": subnet_v6.id, "router_id": router.id})
