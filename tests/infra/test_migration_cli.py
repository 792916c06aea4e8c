"""`yunshu net migrate-ipv6` end to end on a lab (CI runs as root): a job record, the register updated for the hosts
the playbook verified, job events in the SOC; check mode changes neither the hosts nor the register."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from inventory.models import Host, System
from soc.store.base import SearchQuery
from tests.infra.lab_env import LabEnv, lab_env

HOSTS = 3


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabEnv]:
    with lab_env(tmp_path_factory.mktemp("migrate-cli"), hosts=HOSTS, lab_id=8) as env:
        yield env


def _yunshu(env: LabEnv, *args: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "YUNSHU_HOME": str(env.home), "USER": "ops-engineer"}
    return subprocess.run([sys.executable, "-m", "portal.cli", *args], capture_output=True, text=True,
                          env=environ, timeout=600)


def _register(env: LabEnv) -> tuple[dict[str, str | None], dict[str, str]]:
    with env.rt.sessions() as session:
        hosts = {h.name: h.ipv6 for h in session.scalars(select(Host).where(Host.name.like("lab-h%")))}
        systems = {s.id: s.network_stack for s in session.scalars(select(System).where(System.id.like("SYS-LAB-%")))}
    return hosts, systems


def test_check_mode_then_migration_of_one_system(env: LabEnv) -> None:
    web = sorted(h.name for h in env.lab.hosts() if h.web)
    checked = _yunshu(env, "net", "migrate-ipv6", "--scope", "SYS-LAB-WEB", "--check")
    assert checked.returncode == 0, checked.stderr[-3000:]
    record = json.loads(checked.stdout)
    assert record["check"] and record["status"] == "successful" and set(record["stats"]) == set(web)
    assert _register(env)[0] == {h.name: None for h in env.lab.hosts()}  # check mode records nothing

    done = _yunshu(env, "net", "migrate-ipv6", "--scope", "SYS-LAB-WEB")
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads(done.stdout)
    assert record["status"] == "successful" and record["requested_by"] == "ops-engineer"
    assert record["result"]["verified"] == web and record["result"]["systems_dual_stack"] == ["SYS-LAB-WEB"]
    hosts, systems = _register(env)
    assert all(hosts[name] for name in web) and not any(hosts[h.name] for h in env.lab.hosts() if not h.web)
    assert systems["SYS-LAB-WEB"] == "dual" and systems["SYS-LAB-APP"] == "ipv4"

    listed = [json.loads(line) for line in _yunshu(env, "jobs", "list").stdout.splitlines()]
    assert [j["id"] for j in listed] == [record["id"], record["id"] - 1]
    shown = json.loads(_yunshu(env, "jobs", "show", str(record["id"])).stdout)
    assert any(e["event"] == "playbook_on_stats" for e in shown["events"])

    from soc.service import open_soc

    soc = open_soc(env.rt)
    try:
        found = soc.store.count(SearchQuery(where={"event.dataset": "yunshu.ansible", "host.name": web[0]}))
    finally:
        soc.close()
    assert found > 0


def test_unknown_scope_and_job_are_named(env: LabEnv) -> None:
    bad = _yunshu(env, "net", "migrate-ipv6", "--scope", "NOPE")
    assert bad.returncode == 2 and "unknown department(s) or system(s) in scope: NOPE" in bad.stderr
    missing = _yunshu(env, "jobs", "show", "4242")
    assert missing.returncode == 2 and "job 4242 does not exist" in missing.stderr


def test_onboard_then_evidence_stored_with_its_digest(env: LabEnv) -> None:
    """`yunshu onboard SYSTEM` hardens the hosts, reads their evidence back and stores it for the 等保 collectors."""
    import hashlib

    from infra.host_evidence import canonical

    app = sorted(h.name for h in env.lab.hosts() if not h.web)
    done = _yunshu(env, "onboard", "SYS-LAB-APP")
    assert done.returncode == 0, done.stderr[-3000:]
    onboard, evidence = (json.loads(line) for line in done.stdout.splitlines())
    assert onboard["kind"] == "onboard" and onboard["status"] == "successful"
    assert evidence["kind"] == "evidence" and evidence["check"] and evidence["result"]["hosts"] == app
    assert evidence["result"]["changed"] == 0
    shown = _yunshu(env, "evidence", "show", app[0])
    assert shown.returncode == 0, shown.stderr
    stored = json.loads(shown.stdout)
    facts = stored["facts"]
    assert stored["sha256"] == hashlib.sha256(canonical(facts).encode("utf-8")).hexdigest()
    assert stored["sha256"] == evidence["result"]["sha256"][app[0]] and stored["job_id"] == evidence["id"]
    assert facts["faillock"]["deny"] and facts["session"]["tmout"] and facts["session"]["tmout_readonly"]
    assert facts["sshd"]["root_password_login"] is False and facts["sshd"]["weak_ciphers"] == []
    never = _yunshu(env, "evidence", "show", "no-such-host")
    assert never.returncode == 2 and "no evidence stored for host 'no-such-host'" in never.stderr
