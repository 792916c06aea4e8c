"""ipv6_dualstack.yml on a lab of five hosts (lab 5), checked from other namespaces: check mode changes nothing; an
induced verification failure rolls one host back while the others migrate; a rerun completes it; a third run
changes nothing; a failed host in the first of several serial batches stops the later ones (max_fail_percentage);
the playbook passes ansible-lint's production profile.

The tests run in file order and build on each other's lab state (one lab per module, as CI runs it as root).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infra.ansible_run import PlaybookResult, run_playbook, write_inventory
from infra.lab import ZONE
from tests.infra.lab_env import LabEnv, lab_env

ROOT = Path(__file__).resolve().parents[2]
LAB_ID, HOSTS = 5, 5
FAILING = "lab-h03"  # a web host: its rollback must take nginx off IPv6 too
PLAYBOOK = "ipv6_dualstack.yml"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabEnv]:
    with lab_env(tmp_path_factory.mktemp("dualstack"), hosts=HOSTS, lab_id=LAB_ID) as env:
        yield env


def _inventory(env: LabEnv, name: str, hostvars: dict[str, dict[str, Any]] | None = None) -> Path:
    with env.rt.transaction() as session:
        return write_inventory(session, env.home / name, lab=env.lab, ipv6_block=env.rt.settings.net.ipv6_block,
                               hostvars=hostvars)


def _plans(env: LabEnv) -> dict[str, str]:
    """Host name → planned IPv6 address, as the inventory hands it to the playbook."""
    import yaml

    hosts = yaml.safe_load(_inventory(env, "plans.yml").read_text())["all"]["hosts"]
    return {name: v["ipv6_plan"]["address"] for name, v in hosts.items()}


def _run(env: LabEnv, tag: str, inventory: Path, **kwargs: Any) -> PlaybookResult:
    extravars = {"yunshu_ipv6_serial": "100%", "yunshu_ipv6_max_fail_percentage": 25}
    return run_playbook(PLAYBOOK, inventory, env.home / "runs" / tag, extravars=extravars, forks=10, timeout=600,
                        **kwargs)


def _outcome(result: PlaybookResult) -> dict[str, dict[str, Any]]:
    """The playbook's per-host outcome (custom stats ``ipv6_dualstack``)."""
    stats = [e for e in result.events if e.get("event") == "playbook_on_stats"]
    return stats[-1]["event_data"].get("artifact_data", {}).get("ipv6_dualstack", {})


def _ns(env: LabEnv, namespace: str, *args: str) -> subprocess.CompletedProcess[str]:
    return env.lab.run_in(namespace, *args, check=False)


def _global_ipv6(env: LabEnv, namespace: str) -> list[str]:
    out = _ns(env, namespace, "ip", "-j", "-6", "addr", "show", "dev", "eth0", "scope", "global").stdout
    return [a["local"] for link in json.loads(out or "[]") for a in link.get("addr_info", []) if "local" in a]


def _curl6(env: LabEnv, namespace: str, address: str, port: int = 80) -> subprocess.CompletedProcess[str]:
    return _ns(env, namespace, "curl", "-6", "-s", "-m", "3", f"http://[{address}]:{port}/")


def _aaaa(env: LabEnv, namespace: str, host: str) -> str:
    dns6 = env.lab.state()["dns"]["ipv6"]
    done = _ns(env, namespace, "dig", "+short", "+time=2", "+tries=2", "AAAA", f"{host}.{ZONE}", f"@{dns6}")
    return done.stdout.strip()


def _etc(env: LabEnv, host: str, path: str) -> Path:
    """A file in the upper layer of a lab machine's /etc (what playbooks wrote there)."""
    return env.lab.dir / host / "etc.upper" / path


def _assert_dual_stack(env: LabEnv, name: str, address: str, web: bool, peer_ns: str) -> None:
    """``name`` answers over IPv6 as seen from ``peer_ns`` and from the DNS server's namespace."""
    for source in (peer_ns, env.lab.state()["dns"]["namespace"]):
        ping = _ns(env, source, "ping", "-6", "-c", "1", "-W", "2", address)
        assert ping.returncode == 0, f"{name} {address} from {source}: {ping.stdout}{ping.stderr}"
        assert _aaaa(env, source, name) == address
    if web:
        page = _curl6(env, peer_ns, address)
        assert page.returncode == 0 and name in page.stdout, (name, page.returncode, page.stderr)
        # the inet table drops what the policy does not allow: no refusal, the connection just times out
        assert _curl6(env, peer_ns, address, 8080).returncode == 28
    ssh = _ns(env, peer_ns, "ssh", "-6", "-i", str(env.lab.key), "-o", "StrictHostKeyChecking=no", "-o",
              "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5", f"root@{address}",
              "cat", "/etc/hostname")
    assert ssh.returncode == 0 and ssh.stdout.strip() == name, ssh.stderr  # sshd answers over IPv6 as well


def test_check_mode_changes_nothing_on_fresh_hosts(env: LabEnv) -> None:
    site = _etc(env, "lab-h01", "nginx/yunshu-lab.d/site.conf")
    before = site.read_text()
    result = _run(env, "check", _inventory(env, "check.yml"), check=True)
    assert result.status == "successful", result.stats
    assert all(not _global_ipv6(env, h.namespace) for h in env.lab.hosts())
    assert site.read_text() == before and "[" not in before
    assert not _etc(env, "lab-h01", "yunshu/state/ipv6-preflight.json").exists()
    assert not list(_etc(env, "lab-dns", "dnsmasq.hosts.d").glob("ipv6-*"))
    assert "yunshu_dualstack" not in _ns(env, env.lab.hosts()[0].namespace, "nft", "list", "tables").stdout
    assert all(not v["verified"] for v in _outcome(result).values())


@pytest.fixture(scope="module")
def first_run(env: LabEnv) -> PlaybookResult:
    """The migration with lab-h03's verification made to fail."""
    inventory = _inventory(env, "fail.yml", {FAILING: {"ipv6_dualstack_verify_fail": True}})
    return _run(env, "first", inventory)


def test_induced_failure_rolls_back_that_host_only(env: LabEnv, first_run: PlaybookResult) -> None:
    assert first_run.status == "failed" and first_run.failed_hosts() == [FAILING], first_run.stats
    outcome = _outcome(first_run)
    assert outcome[FAILING]["rolled_back"] and outcome[FAILING]["ipv6"] is None
    assert "induced" in outcome[FAILING]["reason"]
    host = next(h for h in env.lab.hosts() if h.name == FAILING)
    address = _plans(env)[FAILING]
    assert _global_ipv6(env, host.namespace) == []
    assert _ns(env, host.namespace, "ip", "-6", "route", "show", "default").stdout.strip() == ""
    assert "yunshu_dualstack" not in _ns(env, host.namespace, "nft", "list", "tables").stdout
    assert "[" not in _etc(env, FAILING, "nginx/yunshu-lab.d/site.conf").read_text()
    listening = _ns(env, host.namespace, "ss", "-ltnH").stdout
    assert f"{host.ipv4}:80" in listening and "]:80" not in listening  # nginx back on IPv4 only
    assert not _etc(env, "lab-dns", f"dnsmasq.hosts.d/ipv6-{FAILING}").exists()
    assert _aaaa(env, f"{env.lab.prefix}-h01", FAILING) == ""
    assert _ns(env, f"{env.lab.prefix}-h01", "ping", "-6", "-c", "1", "-W", "1", address).returncode != 0
    # still reachable over IPv4: ssh from the controller, HTTP from a peer
    ssh = subprocess.run(["ssh", "-i", str(env.lab.key), "-o", "StrictHostKeyChecking=no", "-o",
                          "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", f"root@{host.ipv4}",
                          "cat", "/etc/hostname"], capture_output=True, text=True, timeout=30)
    assert ssh.returncode == 0 and ssh.stdout.strip() == FAILING, ssh.stderr
    page = _ns(env, f"{env.lab.prefix}-h01", "curl", "-4", "-s", "-m", "3", f"http://{host.ipv4}/")
    assert page.returncode == 0 and FAILING in page.stdout


def test_other_hosts_migrated_and_verified_from_other_namespaces(env: LabEnv, first_run: PlaybookResult) -> None:
    plans, outcome = _plans(env), _outcome(first_run)
    migrated = [h for h in env.lab.hosts() if h.name != FAILING]
    assert len(migrated) >= 4
    for host in migrated:
        assert outcome[host.name] == {"ipv6": plans[host.name], "prefixlen": 64,
                                      "gateway": env.lab.state()["gateway"]["ipv6"], "verified": True,
                                      "rolled_back": False, "check_mode": False}
        assert _global_ipv6(env, host.namespace) == [plans[host.name]]
        peer = next(h for h in env.lab.hosts() if h.name != host.name).namespace
        _assert_dual_stack(env, host.name, plans[host.name], host.web, peer)
        record = json.loads(_etc(env, host.name, "yunshu/state/ipv6-preflight.json").read_text())
        assert record["ipv6_addresses"] == [] and record["ipv4_addresses"] == [f"{host.ipv4}/24"]
        assert f"Address={plans[host.name]}/64" in _etc(
            env, host.name, "systemd/network/10-eth0.network.d/60-yunshu-ipv6.conf").read_text()
        # the persistent IPv4 settings come from the preflight's reading of the live interface
        base = _etc(env, host.name, "systemd/network/10-eth0.network").read_text()
        assert f"Address={host.ipv4}/24" in base and f"Gateway={env.lab.state()['gateway']['ipv4']}" in base


def test_rerun_completes_the_rolled_back_host_then_changes_nothing(env: LabEnv, first_run: PlaybookResult) -> None:
    second = _run(env, "second", _inventory(env, "ok.yml"))
    assert second.status == "successful", second.stats
    changed = {(e["event_data"]["host"], e["event_data"]["task"]) for e in second.events
               if e.get("event") == "runner_on_ok" and e["event_data"].get("res", {}).get("changed")}
    assert {h for h, _ in changed} - {FAILING} <= {"lab-dns"}, changed  # the batch's AAAA files: written once
    assert {t for h, t in changed if h != FAILING} <= {"Write or remove the records files on the DNS server",
                                                         "Reload dnsmasq with the server's reload command"}, changed
    host = next(h for h in env.lab.hosts() if h.name == FAILING)
    _assert_dual_stack(env, FAILING, _plans(env)[FAILING], True, f"{env.lab.prefix}-h02")
    assert _outcome(second)[FAILING]["verified"]
    third = _run(env, "third", _inventory(env, "ok.yml"))
    assert third.status == "successful" and third.changed == 0, {h: s for h, s in third.stats.items() if s["changed"]}
    assert _global_ipv6(env, host.namespace) == [_plans(env)[FAILING]]


def test_failed_batch_stops_the_later_batches(env: LabEnv, first_run: PlaybookResult) -> None:
    """serial 2 with max_fail_percentage 0: lab-h01 fails in the first batch, so lab-h03..h05 are never run."""
    inventory = _inventory(env, "batches.yml", {"lab-h01": {"ipv6_dualstack_verify_fail": True}})
    result = run_playbook(PLAYBOOK, inventory, env.home / "runs" / "batches", forks=10, timeout=600,
                          extravars={"yunshu_ipv6_scope": "dept_lab:!role_dns", "yunshu_ipv6_serial": 2,
                                     "yunshu_ipv6_max_fail_percentage": 0})
    assert result.status == "failed" and "lab-h01" in result.failed_hosts()
    assert set(result.stats) == {"lab-h01", "lab-h02"}, result.stats
    assert _outcome(result)["lab-h01"]["rolled_back"]
    h01 = next(h for h in env.lab.hosts() if h.name == "lab-h01")
    assert _global_ipv6(env, h01.namespace) == []  # back to its preflight record: IPv4 only
    for later in ("lab-h03", "lab-h04", "lab-h05"):  # untouched: still dual stack from the earlier runs
        ns = next(h for h in env.lab.hosts() if h.name == later).namespace
        assert _global_ipv6(env, ns) == [_plans(env)[later]]


def test_playbook_passes_ansible_lint_production_profile() -> None:
    lint = Path(sys.executable).parent / "ansible-lint"
    done = subprocess.run([str(lint), "--offline", "--profile", "production", "-c", "playbooks/.ansible-lint",
                           "playbooks/ipv6_dualstack.yml"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Profile 'production' was required, and it passed" in done.stdout + done.stderr
