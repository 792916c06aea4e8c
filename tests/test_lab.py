"""The network lab (CI runs as root): hosts in namespaces reachable over SSH, each with its own /etc, the web site,
DNS over IPv4 and IPv6, the lab in the register; up/down idempotent; a second lab alongside the first."""

from __future__ import annotations

import os
import socket
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from core.runtime import Runtime
from infra.lab import DNS, ZONE, Lab, LabError, lab_hosts, namespaces
from infra.lab_register import DEPARTMENT, register_lab, start_registered_lab
from inventory.ansible_inventory import build_inventory
from inventory.models import Host
from tests.conftest import make_runtime

HOSTS = 3


@pytest.fixture(scope="module")
def lab_rt(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Lab, Runtime]]:
    if os.geteuid() != 0:
        pytest.fail("the lab tests need root (CI runs as root): network namespaces and bridges")
    home = tmp_path_factory.mktemp("lab-home")
    rt = make_runtime(home)
    Lab(home).down()  # a lab left over by an interrupted run
    lab = start_registered_lab(rt, HOSTS)
    yield lab, rt
    lab.down()
    rt.close()
    assert not {n for n in namespaces() if n.startswith("ys-")}


@pytest.fixture(scope="module")
def lab(lab_rt: tuple[Lab, Runtime]) -> Lab:
    return lab_rt[0]


def _ssh(lab: Lab, ip: str, command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ssh", "-i", str(lab.key), "-o", "StrictHostKeyChecking=no", "-o",
                           "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5",
                           f"root@{ip}", command], capture_output=True, text=True, timeout=30)


def test_hosts_answer_over_ssh_with_their_own_network(lab: Lab) -> None:
    for host in lab.hosts():
        done = _ssh(lab, host.ipv4, "ip -4 -o addr show dev eth0; ip route show default; hostname")
        assert done.returncode == 0, done.stderr
        assert f"inet {host.ipv4}/24" in done.stdout and "default via 198.18.200.1" in done.stdout
        assert done.stdout.strip().endswith(host.name)  # its own UTS namespace
    assert socket.gethostname() not in {h.name for h in lab.hosts()}  # this machine's name is its own


def test_each_machine_has_its_own_etc(lab: Lab) -> None:
    """A playbook hardening a lab host changes that host's /etc only, never this machine's or a peer's."""
    first, second = lab.hosts()[:2]
    probe = "/etc/ssh/sshd_config.d/99-yunshu-probe.conf"
    assert _ssh(lab, first.ipv4, f"echo '# probe' > {probe} && cat {probe}").stdout.strip() == "# probe"
    assert not Path(probe).exists()
    assert _ssh(lab, second.ipv4, f"test -e {probe}").returncode != 0
    assert _ssh(lab, first.ipv4, f"rm {probe}").returncode == 0
    assert "Include /etc/ssh/sshd_config.d/*.conf" in _ssh(lab, first.ipv4, "cat /etc/ssh/sshd_config").stdout
    # root's home is the machine's own (this machine's shell start-up files, e.g. pyenv's, never run there)
    assert _ssh(lab, first.ipv4, "touch /root/.lab-probe && ls -A /root").stdout.split() == [".lab-probe"]
    assert not Path("/root/.lab-probe").exists()


def test_web_sites_dns_and_isolation(lab: Lab) -> None:
    web = [h for h in lab.hosts() if h.web]
    assert web and all(not h.web for h in lab.hosts() if h not in web)
    with urllib.request.urlopen(f"http://{web[0].ipv4}/", timeout=5) as response:
        assert "示例市政务网站" in response.read().decode("utf-8")
    listening = _ssh(lab, web[0].ipv4, "cat /etc/nginx/yunshu-lab.d/site.conf").stdout
    assert f"listen {web[0].ipv4}:80;" in listening and "[::]" not in listening  # IPv4 only before the migration
    answer = subprocess.run(["dig", "+short", "+time=2", "+tries=1", f"@{DNS}", f"lab-h02.{ZONE}"],
                            capture_output=True, text=True, timeout=10).stdout.split()
    assert answer == [lab_hosts(HOSTS)[1].ipv4]
    peer = subprocess.run(["ip", "netns", "exec", "ys-h02", "ping", "-c", "1", "-W", "2", web[0].ipv4],
                          capture_output=True, text=True, timeout=10)
    assert peer.returncode == 0
    outside = subprocess.run(["ip", "netns", "exec", "ys-h02", "ping", "-c", "1", "-W", "1", "192.0.2.1"],
                             capture_output=True, text=True, timeout=10)
    assert outside.returncode != 0  # no route leaves the lab


def test_router_and_dns_have_the_ipam_ipv6_plan(lab: Lab) -> None:
    state = lab.state()
    lan, router6, dns6 = state["ipv6_lan"], state["gateway"]["ipv6"], state["dns"]["ipv6"]
    assert lan.endswith("::/64") and router6.endswith("::1") and dns6.endswith("::10")  # IPAM: lab-dns first
    ping = lab.run_in(lab.dns_ns, "ping", "-6", "-c", "1", "-W", "2", router6, check=False)
    assert ping.returncode == 0, ping.stderr
    # dnsmasq answers on its IPv6 address too (queried from the DNS namespace, where the route exists)
    answer = lab.run_in(lab.dns_ns, "dig", "+short", "+time=2", "+tries=1", f"@{dns6}", f"lab-h01.{ZONE}")
    assert answer.stdout.split() == [lab_hosts(HOSTS)[0].ipv4]


def test_lab_is_in_the_register_and_the_inventory(lab_rt: tuple[Lab, Runtime]) -> None:
    lab, rt = lab_rt
    with rt.sessions() as session:
        names = set(session.scalars(select(Host.name).where(Host.name.like("lab-%"))))
        inventory = build_inventory(session)
        # registering again changes nothing
        result, _, _ = register_lab(session, rt.audit, lab, lab_hosts(HOSTS), rt.settings.net.ipv6_block)
        session.rollback()
    assert names == {"lab-dns", *(h.name for h in lab.hosts())}
    assert set(inventory[f"dept_{DEPARTMENT.lower()}"]["hosts"]) == names
    assert inventory["_meta"]["hostvars"]["lab-h01"]["ansible_host"] == lab.hosts()[0].ipv4
    assert set(inventory["role_web"]["hosts"]) >= {h.name for h in lab.hosts() if h.web}
    assert not result.created and not result.updated


def test_up_again_changes_nothing(lab: Lab) -> None:
    pids = sorted(p.read_text() for p in Path(lab.dir).glob("*/init.pid"))
    lab.up(HOSTS, lab.state()["ipv6_lan"], lab.state()["dns"]["ipv6"])
    assert sorted(p.read_text() for p in Path(lab.dir).glob("*/init.pid")) == pids


def test_a_second_lab_runs_alongside(lab: Lab, tmp_path: Path) -> None:
    other = Lab(tmp_path, lab_id=3)
    try:
        [host] = other.up(1)
        assert host.ipv4 == "198.18.203.11" and host.namespace == "ys3-h01"
        assert _ssh(other, host.ipv4, "hostname -I").returncode == 0
        assert _ssh(lab, lab.hosts()[0].ipv4, "true").returncode == 0  # the first lab is untouched
    finally:
        other.down()
    assert not {n for n in namespaces() if n.startswith("ys3-")}
    assert {h.namespace for h in lab.hosts()} <= namespaces()


def test_bad_sizes_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="between 1 and 200"):
        lab_hosts(0)
    with pytest.raises(ValueError, match="lab id must be between 0 and 9"):
        Lab(tmp_path, lab_id=12)
    assert issubclass(LabError, RuntimeError)
