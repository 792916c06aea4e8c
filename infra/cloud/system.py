"""SystemStack: a system's instances (one port each), volumes, its security group with the rules the ticket asks
for, and a floating IP only when an approved internet-exposure ticket names the instance.

At 等保 level 3 and above the system's volumes use a private encrypted volume type. pulumi-openstack has no resource
for Cinder's encryption type, so the type's extra specs carry the encryption request (``yunshu:encryption*``);
the policy pack checks them, and the platform's volume-type hook applies them as the Cinder encryption type.
"""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_openstack as openstack

from infra.cloud.specs import SystemSpec, VolumeEncryption
from infra.cloud.tags import metadata, openstack_tags

ENCRYPTION_MIN_LEVEL = 3


def encryption_extra_specs(encryption: VolumeEncryption) -> dict[str, str]:
    """Extra specs naming how volumes of the type are encrypted."""
    return {"yunshu:encrypted": "true", "yunshu:encryption_provider": encryption.provider,
            "yunshu:encryption_cipher": encryption.cipher, "yunshu:encryption_key_size": str(encryption.key_size),
            "yunshu:encryption_control_location": encryption.control_location}


class SystemStack(pulumi.ComponentResource):
    """Instances, volumes, the system's security group and (only with approval) a floating IP."""

    def __init__(self, name: str, spec: SystemSpec, project_id: pulumi.Input[str], network_id: pulumi.Input[str],
                 security_group_ids: Sequence[pulumi.Input[str]] = (),
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("yunshu:cloud:SystemStack", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        labels = spec.labels
        tags = openstack_tags(labels)
        base = spec.system_id.lower()

        sg = openstack.networking.SecGroup(
            f"{name}-sg", name=f"{base}-app", tenant_id=project_id, tags=tags,
            description=f"{spec.system_id} {spec.name} openings requested in ticket {spec.ticket_id}", opts=child)
        for index, rule in enumerate(spec.ingress, start=1):
            args: dict[str, object] = {"direction": "ingress", "ethertype": rule.ethertype,
                                       "remote_ip_prefix": rule.remote_cidr}
            if rule.protocol != "any":
                args["protocol"] = rule.protocol
            if rule.port_min is not None:
                args["port_range_min"] = rule.port_min
                args["port_range_max"] = rule.port_max or rule.port_min
            openstack.networking.SecGroupRule(
                f"{name}-ingress-{index}", security_group_id=sg.id, tenant_id=project_id,
                description=(rule.description or "requested") + f" ticket={spec.ticket_id}", opts=child,
                **args)  # type: ignore[arg-type]

        volume_type: pulumi.Input[str] | None = None
        if spec.mlps_level >= ENCRYPTION_MIN_LEVEL and spec.volumes:
            vtype = openstack.blockstorage.VolumeTypeV3(
                f"{name}-voltype-encrypted", name=f"{base}-encrypted", is_public=False,
                description=f"encrypted volumes of {spec.system_id} (等保 level {spec.mlps_level})",
                extra_specs=encryption_extra_specs(spec.encryption), opts=child)
            openstack.blockstorage.VolumeTypeAccessV3(
                f"{name}-voltype-access", project_id=project_id, volume_type_id=vtype.id, opts=child)
            volume_type = vtype.name

        groups = [*security_group_ids, sg.id]
        ports: dict[str, openstack.networking.Port] = {}
        instances: dict[str, openstack.compute.Instance] = {}
        for inst in spec.instances:
            for n in range(1, inst.count + 1):
                key = f"{inst.name}-{n}"
                port = openstack.networking.Port(
                    f"{name}-{key}-port", name=f"{base}-{key}", network_id=network_id, tenant_id=project_id,
                    security_group_ids=groups, admin_state_up=True, tags=tags, opts=child)
                server = openstack.compute.Instance(
                    f"{name}-{key}", name=f"{base}-{key}", flavor_name=inst.flavor, image_name=inst.image,
                    networks=[openstack.compute.InstanceNetworkArgs(port=port.id)],
                    metadata=metadata(labels, role=inst.role), tags=tags, opts=child)
                if n == 1:
                    ports[inst.name], instances[inst.name] = port, server

        for vol in spec.volumes:
            volume = openstack.blockstorage.Volume(
                f"{name}-vol-{vol.name}", name=f"{base}-{vol.name}", size=vol.size_gb, volume_type=volume_type,
                metadata=metadata(labels), opts=child)
            if vol.attach_to is not None:
                openstack.compute.VolumeAttach(
                    f"{name}-vol-{vol.name}-attach", instance_id=instances[vol.attach_to].id,
                    volume_id=volume.id, opts=child)

        exposure = spec.internet_exposure
        if exposure is not None and exposure.approved:
            openstack.networking.FloatingIp(
                f"{name}-fip-{exposure.instance}", pool=exposure.pool, port_id=ports[exposure.instance].id,
                tenant_id=project_id, description=f"互联网暴露 approved by {exposure.approved_by}",
                tags=openstack_tags(labels, internet_exposure=exposure.ticket_id), opts=child)
        elif exposure is not None:
            pulumi.log.warn(f"{spec.system_id}: internet exposure {exposure.ticket_id} is not approved; "
                            "no floating IP is planned", resource=self)

        self.security_group_id = sg.id
        self.register_outputs({"security_group_id": sg.id})
