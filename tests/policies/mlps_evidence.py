"""A system whose evidence passes every automatic check, for the check and evaluation tests to break piece by piece."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

AS_OF = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
HOSTS = ["web-01", "web-02", "db-01", "db-02"]


def host(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "collected_at": AS_OF - timedelta(hours=3),
        "password": {"minlen": 12, "minclass": 3, "max_days": 90},
        "empty_password_accounts": [],
        "faillock": {"enabled": True, "deny": 5, "unlock_time": 900},
        "tmout": 600,
        "sshd": {
            "permit_root_login": "no",
            "permit_empty_passwords": False,
            "password_authentication": True,
            "authentication_methods": "publickey,keyboard-interactive",
            "client_alive_interval": 300,
            "client_alive_count_max": 2,
            "allowed_sources": ["10.20.0.0/24", "fd00:20::/64"],
        },
        "uid0_accounts": ["root"],
        "default_accounts_enabled": [],
        "stale_accounts": [],
        "shared_accounts": [],
        "sudo_nopasswd_all": [],
        "mac": {"kind": "selinux", "mode": "enforcing"},
        "auditd": {"running": True, "rules": 42, "immutable": True},
        "rsyslog": {"forwarding": True, "targets": ["soc.gov.example:6514"]},
        "listening": [
            {"proto": "tcp", "port": 22, "address": "0.0.0.0"},
            {"proto": "tcp", "port": 443, "address": "::"},
            {"proto": "tcp", "port": 25, "address": "127.0.0.1"},
        ],
        "pending_security_updates": 0,
        "exploitable_vulns": [],
        "antimalware": {"installed": True, "running": True, "signatures_age_days": 1},
        "baseline": {"playbook": "onboard.yml", "applied_at": AS_OF - timedelta(days=20)},
    }


def k8s_namespace(name: str = "dsj-apps", department: str = "DSJ", level: int = 3) -> dict[str, Any]:
    """A namespace as the Kubernetes collector reads what K8sTenant creates (infra/cloud/k8s.py)."""
    return {
        "namespace": name,
        "cluster": "https://k8s.gov.example:6443",
        "labels": {"yunshu/system-id": "SYS-TEST-01", "yunshu/department": department},
        "pod_security_enforce": "restricted" if level >= 3 else "baseline",
        "network_policies": [
            {"name": "default-deny", "policy_types": ["Ingress", "Egress"]},
            {"name": "allow-dns", "policy_types": ["Egress"], "egress": [{
                "peers": [{"namespace_selector": {"kubernetes.io/metadata.name": "kube-system"},
                           "pod_selector": {"k8s-app": "kube-dns"}}], "ports": ["UDP/53", "TCP/53"]}]},
            {"name": "allow-web", "pod_selector": {"app": "web"}, "policy_types": ["Ingress"], "ingress": [{
                "peers": [{"namespace_selector": {"kubernetes.io/metadata.name": "ingress"}}], "ports": ["TCP/8080"]}]},
        ],
        "quotas": [{"name": "yunshu-quota", "hard": {"requests.cpu": "4", "requests.memory": "8Gi", "limits.cpu": "8",
                                                     "limits.memory": "16Gi", "pods": "50"}}],
        "limit_ranges": [{"name": "yunshu-limits", "limits": [{
            "type": "Container", "default": {"cpu": "500m", "memory": "512Mi"},
            "default_request": {"cpu": "100m", "memory": "128Mi"}, "max": {"cpu": "4", "memory": "8Gi"}}]}],
        "bindings": [{"name": "yunshu-group-edit", "role_kind": "ClusterRole", "role": "edit",
                      "subjects": [{"kind": "Group", "name": "dept-dsj"}]}],
        "roles": [{"name": "edit", "kind": "ClusterRole", "rules": [
            {"api_groups": ["", "apps"], "resources": ["pods", "deployments"], "verbs": ["get", "list", "create"]}]}],
    }


def good(level: int = 3, cloud_role: str | None = "customer") -> dict[str, Any]:
    """Plain evidence mapping (as a collector would produce) for a level-``level`` system on the government cloud."""
    return {
        "register": {
            "system_id": "SYS-TEST-01",
            "name": "测试系统",
            "department": "DSJ",
            "owner": "张三",
            "mlps_level": level,
            "grading_info_level": level,
            "grading_service_level": min(level, 2),
            "data_class": "important",
            "public_data_level": "L3",
            "hosting": "gov_cloud",
            "network_stack": "dual",
            "cloud_role": cloud_role,
            "filing_no": "11010099999-20001",
            "last_assessment": (AS_OF - timedelta(days=200)).date(),
            "hosts": [
                {
                    "name": n,
                    "role": "web" if n.startswith("web") else "db",
                    "ipv4": f"10.20.1.{i + 10}",
                    "ipv6": f"fd00:20:1::{i + 10:x}",
                }
                for i, n in enumerate(HOSTS)
            ],
            "networks": [{"code": "DSJ-APP", "prefixes": ["10.20.1.0/24", "fd00:20:1::/64"], "department": "DSJ"}],
        },
        "hosts": [host(n) for n in HOSTS],
        "infra": {
            "region": "cn-gov-1",
            "country": "CN",
            "ops_countries": ["CN"],
            "platform_mlps_level": 3,
            "volumes": [{"name": "db-01-data", "encrypted": True}, {"name": "db-02-data", "encrypted": True}],
            "instances": [{"name": n, "role": "web" if n.startswith("web") else "db"} for n in HOSTS],
            "security_rules": [
                {"group": "web", "protocol": "tcp", "port_min": 443, "port_max": 443, "remote": "0.0.0.0/0"},
                {"group": "web", "protocol": "tcp", "port_min": 22, "port_max": 22, "remote": "10.20.0.0/24"},
                {"group": "db", "protocol": "tcp", "port_min": 5432, "port_max": 5432, "remote": "10.20.1.0/24"},
            ],
            "default_deny": True,
            "isolated_tenant_network": True,
            "backups": {
                "policy": True,
                "last_backup_at": AS_OF - timedelta(hours=5),
                "offsite": True,
                "offsite_realtime": True,
                "local_copy": True,
                "last_restore_test_at": AS_OF - timedelta(days=90),
            },
        },
        "soc": {
            "as_of": AS_OF,
            "hosts_reporting_24h": list(HOSTS),
            "retention_days": 400,
            "network_sources_reporting": True,
            "network_rules_enabled": 25,
            "alerts_total": 12,
            "alerts_over_sla": 0,
        },
        "drills": {
            "drills": [
                {
                    "kind": "emergency",
                    "held_on": (AS_OF - timedelta(days=100)).date(),
                    "findings_total": 3,
                    "findings_open": 0,
                }
            ]
        },
        "crypto": {
            "endpoints": [{"name": "portal", "protocols": ["TLSv1.2", "TLSv1.3"]}],
            "scheme_on_file": True,
            "scheme_requires_sm": True,
            "sm_algorithms_in_use": ["SM2", "SM3", "SM4"],
            "certified_products": True,
        },
        "k8s": [k8s_namespace(level=level)],
    }
