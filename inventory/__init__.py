"""The register (台账): departments, systems, hosts, networks and prefixes; import/export; Ansible inventory."""
