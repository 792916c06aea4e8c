"""Running a playbook with ansible-runner: the inventory written from the register, a private directory per run,
and the run's outcome as plain data (rc, status, per-host stats, events).

ansible-runner finds ``ansible-playbook`` on PATH only, so this interpreter's bin directory is put first; Ansible's
home, local and remote temporary directories and the SSH control path all live in the run's own directory, so runs
never share state.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ansible_runner
import yaml
from sqlalchemy.orm import Session

from infra.lab import ZONE, Lab
from inventory.ansible_inventory import build_inventory
from inventory.ipam import plan_ipv6

PLAYBOOKS = Path(__file__).resolve().parent.parent / "playbooks"
STAT_KEYS = ("ok", "changed", "failures", "dark", "skipped", "rescued", "ignored")


@dataclass
class PlaybookResult:
    """What one ansible-runner run produced."""

    status: str  # successful | failed | timeout | canceled
    rc: int
    stats: dict[str, dict[str, int]]  # host → ok/changed/failures/dark/skipped/...
    duration_s: float
    artifacts: Path
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def changed(self) -> int:
        return sum(h.get("changed", 0) for h in self.stats.values())

    @property
    def custom_stats(self) -> dict[str, Any]:
        """What the playbook published with ``set_stats`` (ansible-runner: ``artifact_data`` of the final stats)."""
        for event in reversed(self.events):
            if event.get("event") == "playbook_on_stats":
                data = (event.get("event_data") or {}).get("artifact_data")
                return data if isinstance(data, dict) else {}
        return {}

    def failed_hosts(self) -> list[str]:
        return sorted(h for h, s in self.stats.items() if s.get("failures") or s.get("dark"))


def lab_connection(lab: Lab) -> dict[str, Any]:
    """Connection variables for lab hosts: root with the lab key, throwaway host keys not remembered."""
    return {"ansible_user": "root", "ansible_ssh_private_key_file": str(lab.key),
            "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
            "ansible_python_interpreter": "/usr/bin/python3"}


def ipv6_plan_vars(session: Session, ipv6_block: str, departments: set[str]) -> dict[str, dict[str, Any]]:
    """Per host its planned IPv6 address, prefix length and gateway (IPAM; allocated now where missing)."""
    out: dict[str, dict[str, Any]] = {}
    for dept in plan_ipv6(session, ipv6_block, departments):
        lan = next(n for n in dept["networks"] if "gateway" in n)
        prefixlen = ipaddress.IPv6Network(lan["ipv6_prefix"]).prefixlen
        for host in dept["hosts"]:
            out[host["name"]] = {"address": host["ipv6"], "prefixlen": prefixlen, "gateway": lan["gateway"],
                                 "network": lan["ipv6_prefix"]}
    return out


def write_inventory(session: Session, path: Path, lab: Lab | None = None, ipv6_block: str | None = None,
                    hostvars: dict[str, dict[str, Any]] | None = None) -> Path:
    """The register as a static YAML inventory for one run (groups as in the dynamic inventory).

    With ``lab``, lab hosts get the lab's connection variables and ``yunshu_dns`` (the lab DNS server and zone);
    with ``ipv6_block``, every host gets ``ipv6_plan`` from IPAM; ``hostvars`` are merged in last."""
    inventory = build_inventory(session)
    meta = inventory.pop("_meta")["hostvars"]
    if ipv6_block:
        departments = {v["gov_department"] for v in meta.values()}
        for name, plan in ipv6_plan_vars(session, ipv6_block, departments).items():
            if name in meta:
                meta[name]["ipv6_plan"] = plan
    if lab is not None:
        state = lab.state()
        dns = {"host": state["dns"]["name"], "zone": ZONE, "ipv4": state["dns"]["ipv4"], "ipv6": state["dns"]["ipv6"]}
        lab_names = {h.name for h in lab.hosts()} | {dns["host"]}
        for name in lab_names & meta.keys():
            meta[name].update(lab_connection(lab), yunshu_dns=dns)
    for name, extra in (hostvars or {}).items():
        meta.setdefault(name, {}).update(extra)
    children = {group: {"hosts": {h: None for h in body["hosts"]}}
                for group, body in inventory.items() if group not in ("all", "ungrouped") and body["hosts"]}
    document = {"all": {"hosts": meta, "children": children}}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(document, allow_unicode=True, sort_keys=True), encoding="utf-8")
    return path


def control_path_dir(private_dir: Path) -> Path:
    """A short directory for the run's SSH control sockets: a Unix socket path is limited to 108 bytes, which a
    run directory deep in a home (or a test's temporary tree) exceeds; one per run, private to this user."""
    digest = hashlib.sha256(str(private_dir.resolve()).encode("utf-8")).hexdigest()[:12]
    path = Path(tempfile.gettempdir()) / f"yscp-{digest}"
    path.mkdir(mode=0o700, exist_ok=True)
    return path


def runner_env(private_dir: Path) -> dict[str, str]:
    """Environment for one run: our interpreter's bin on PATH, Ansible state inside the run's directory."""
    home = private_dir / "ansible"
    return {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
        "ANSIBLE_HOME": str(home),
        "ANSIBLE_LOCAL_TEMP": str(home / "tmp"),
        "ANSIBLE_REMOTE_TEMP": "/tmp/.ansible-yunshu",
        "ANSIBLE_SSH_CONTROL_PATH_DIR": str(control_path_dir(private_dir)),
        "ANSIBLE_HOST_KEY_CHECKING": "False",
        "ANSIBLE_PIPELINING": "True",
        "ANSIBLE_FORCE_COLOR": "False",
        "ANSIBLE_NOCOLOR": "True",
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        "ANSIBLE_COLLECTIONS_PATH": str(home / "collections"),
        "ANSIBLE_SSH_ARGS": "-o ControlMaster=auto -o ControlPersist=60s",
        # a busy host (or controller) may take a while to answer: wait longer and retry before calling it unreachable
        "ANSIBLE_TIMEOUT": "30",
        "ANSIBLE_SSH_RETRIES": "3",
    }


def run_playbook(playbook: str | Path, inventory: Path, private_dir: Path, *, extravars: dict[str, Any] | None = None,
                 limit: str | None = None, check: bool = False, forks: int = 20, timeout: int | None = None,
                 on_event: Callable[[dict[str, Any]], None] | None = None,
                 cancelled: Callable[[], bool] | None = None, keep_events: bool = True) -> PlaybookResult:
    """Run ``playbook`` (a path, or a name under playbooks/) and return its outcome; never raises for a failed
    play (see ``status``/``rc``). ``cancelled`` is polled by ansible-runner; ``timeout`` in seconds."""
    path = Path(playbook)
    if not path.is_absolute():
        path = PLAYBOOKS / path
    if not path.is_file():
        raise FileNotFoundError(f"playbook {path} does not exist")
    private_dir.mkdir(parents=True, exist_ok=True)
    env = runner_env(private_dir)
    Path(env["ANSIBLE_HOME"], "tmp").mkdir(parents=True, exist_ok=True)
    events: list[dict[str, Any]] = []

    def handle(event: dict[str, Any]) -> bool:
        if keep_events:
            events.append(event)
        if on_event is not None:
            on_event(event)
        return True  # written to the artifacts too: runner.stats reads them back

    cmdline = "--check --diff" if check else None
    started = time.monotonic()
    runner = ansible_runner.run(
        private_data_dir=str(private_dir), playbook=str(path), inventory=str(inventory), extravars=extravars or {},
        limit=limit, forks=forks, envvars=env, cmdline=cmdline, quiet=True, event_handler=handle,
        cancel_callback=cancelled, timeout=timeout, project_dir=str(path.parent))
    stats = runner.stats or {}
    per_host: dict[str, dict[str, int]] = {}
    for key in STAT_KEYS:
        for host, count in (stats.get(key) or {}).items():
            per_host.setdefault(host, dict.fromkeys(STAT_KEYS, 0))[key] = count
    return PlaybookResult(status=runner.status, rc=runner.rc, stats=per_host,
                          duration_s=round(time.monotonic() - started, 3),
                          artifacts=Path(runner.config.artifact_dir), events=events)
