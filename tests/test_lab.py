"""The network lab (CI runs as root): hosts in namespaces reachable over SSH, the web site, DNS; up/down idempotent.

Lab hosts share one set of namespace names, so this module runs its lab once and tears it down at the end.
"""

from __future__ import annotations

import os
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.lab import DNS, ZONE, Lab, LabError, lab_hosts, namespaces

HOSTS = 3


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    if os.geteuid() != 0:
        pytest.fail("the lab tests need root (CI runs as root): network namespaces and bridges")
    lab = Lab(tmp_path_factory.mktemp("lab-home"))
    lab.down()  # a lab left over by an interrupted run
    lab.up(HOSTS)
    yield lab
    lab.down()
    assert not {n for n in namespaces() if n.startswith("ys-")}


def _ssh(lab: Lab, ip: str, command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ssh", "-i", str(lab.key), "-o", "StrictHostKeyChecking=no", "-o",
                           "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5",
                           f"root@{ip}", command], capture_output=True, text=True, timeout=30)


def test_hosts_answer_over_ssh_with_their_own_network(lab: Lab) -> None:
    for host in lab.hosts():
        done = _ssh(lab, host.ipv4, "ip -4 -o addr show dev eth0; ip route show default")
        assert done.returncode == 0, done.stderr
        assert f"inet {host.ipv4}/24" in done.stdout and "default via 198.18.200.1" in done.stdout


def test_web_sites_dns_and_isolation(lab: Lab) -> None:
    web = [h for h in lab.hosts() if h.web]
    assert web and all(not h.web for h in lab.hosts() if h not in web)
    with urllib.request.urlopen(f"http://{web[0].ipv4}/", timeout=5) as response:
        assert "示例市政务网站" in response.read().decode("utf-8")
    answer = subprocess.run(["dig", "+short", "+time=2", "+tries=1", f"@{DNS}", f"lab-h02.{ZONE}"],
                            capture_output=True, text=True, timeout=10).stdout.split()
    assert answer == [lab_hosts(HOSTS)[1].ipv4]
    peer = subprocess.run(["ip", "netns", "exec", "ys-h02", "ping", "-c", "1", "-W", "2", web[0].ipv4],
                          capture_output=True, text=True, timeout=10)
    assert peer.returncode == 0
    outside = subprocess.run(["ip", "netns", "exec", "ys-h02", "ping", "-c", "1", "-W", "1", "192.0.2.1"],
                             capture_output=True, text=True, timeout=10)
    assert outside.returncode != 0  # no route leaves the lab


def test_up_again_changes_nothing(lab: Lab) -> None:
    pids = sorted(p.read_text() for p in Path(lab.dir).glob("*/sshd.pid"))
    lab.up(HOSTS)
    assert sorted(p.read_text() for p in Path(lab.dir).glob("*/sshd.pid")) == pids


def test_bad_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="between 1 and 200"):
        lab_hosts(0)
    assert issubclass(LabError, RuntimeError)
