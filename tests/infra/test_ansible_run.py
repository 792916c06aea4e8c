"""Playbooks through ansible-runner against lab hosts from the register: stats, events, check mode, failures."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.ansible_run import run_playbook
from tests.infra.lab_env import LabEnv, lab_env

PLAY = """
- name: Probe
  hosts: dept_lab:!role_dns
  gather_facts: false
  tasks:
    - name: Write a marker into the host's own /etc
      ansible.builtin.copy:
        dest: /etc/yunshu-probe
        content: "{{ inventory_hostname }} {{ ipv6_plan.address }}\\n"
        mode: "0644"
    - name: Fail where asked
      ansible.builtin.fail:
        msg: induced
      when: inventory_hostname in (fail_on | default([]))
"""


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabEnv]:
    with lab_env(tmp_path_factory.mktemp("ansible-run"), hosts=2, lab_id=4) as env:
        yield env


def test_run_reports_per_host_stats_and_events(env: LabEnv, tmp_path: Path) -> None:
    playbook = tmp_path / "probe.yml"
    playbook.write_text(PLAY)
    inventory = env.inventory()
    seen: list[str] = []
    first = run_playbook(playbook, inventory, tmp_path / "run1", on_event=lambda e: seen.append(e.get("event", "")))
    assert first.status == "successful" and first.rc == 0, first.stats
    assert set(first.stats) == {"lab-h01", "lab-h02"} and first.changed == 2
    assert "playbook_on_stats" in seen and "runner_on_ok" in seen
    again = run_playbook(playbook, inventory, tmp_path / "run2")
    assert again.changed == 0
    assert not Path("/etc/yunshu-probe").exists()  # written into the lab hosts' own /etc only
    failed = run_playbook(playbook, inventory, tmp_path / "run3", extravars={"fail_on": ["lab-h02"]})
    assert failed.status == "failed" and failed.rc != 0 and failed.failed_hosts() == ["lab-h02"]


def test_missing_playbook_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nope\.yml"):
        run_playbook("nope.yml", tmp_path / "inv.yml", tmp_path / "run")


def test_control_sockets_live_in_a_short_private_directory(tmp_path: Path) -> None:
    """SSH refuses a control socket path over 108 bytes; a deep run directory must not push it there."""
    from infra.ansible_run import control_path_dir

    deep = tmp_path / ("nested-" * 20) / "runs" / "evidence-before"
    path = control_path_dir(deep)
    # ansible's socket name: a 10-character hash plus ssh's temporary 17-character suffix
    assert len(str(path)) + 1 + 10 + 17 < 108
    assert path.stat().st_mode & 0o777 == 0o700
    assert control_path_dir(deep) == path and control_path_dir(tmp_path / "other") != path
