"""IPAM: deterministic, never overlapping, stable, exhaustion named; the plan over the sample city; the CLI."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inventory.ipam import IpamExhausted, lowest_free_address, lowest_free_subnet, plan_ipv6
from tests.conftest import load_sample, make_runtime, run_cli

BLOCK = ipaddress.IPv6Network("2001:db8::/40")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=40, max_value=56), min_size=1, max_size=60))
def test_allocations_never_overlap_and_are_deterministic(lengths: list[int]) -> None:
    def run() -> list[ipaddress.IPv6Network]:
        taken: list[ipaddress.IPv6Network] = []
        for length in lengths:
            with contextlib.suppress(IpamExhausted):
                taken.append(lowest_free_subnet(BLOCK, length, taken))
        return taken

    first = run()
    assert first == run()
    assert all(n.subnet_of(BLOCK) for n in first)
    for i, a in enumerate(first):
        for b in first[i + 1:]:
            assert not a.overlaps(b), (a, b)


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=0, max_value=16))
def test_exhaustion_is_reported_after_the_last_free_prefix(extra: int) -> None:
    block = ipaddress.IPv6Network("2001:db8::/44")  # 16 /48s
    taken = [lowest_free_subnet(block, 48, []) for _ in range(1)]
    for _ in range(15):
        taken.append(lowest_free_subnet(block, 48, taken))
    assert len(set(taken)) == 16
    for _ in range(extra + 1):
        with pytest.raises(IpamExhausted, match=r"no free /48 left in 2001:db8::/44 \(16 in all"):
            lowest_free_subnet(block, 48, taken)


def test_reserved_prefixes_and_addresses() -> None:
    reserved = [ipaddress.IPv6Network("2001:db8::/48"), ipaddress.IPv6Network("2001:db8:2::/47")]
    assert lowest_free_subnet(BLOCK, 48, reserved) == ipaddress.IPv6Network("2001:db8:1::/48")
    subnet = ipaddress.IPv6Network("2001:db8:1::/126")
    first = lowest_free_address(ipaddress.IPv6Network("2001:db8:1::/64"), set())
    assert first == ipaddress.IPv6Address("2001:db8:1::10")
    with pytest.raises(IpamExhausted, match="no free host address"):
        lowest_free_address(subnet, set())
    with pytest.raises(ValueError, match="does not fit"):
        lowest_free_subnet(BLOCK, 32, [])


def test_plan_over_the_sample_city_is_stable(tmp_path: Path) -> None:
    rt = make_runtime(tmp_path / "var")
    load_sample(rt)
    with rt.transaction() as session:
        first = plan_ipv6(session, "2001:db8::/32")
    with rt.transaction() as session:
        again = plan_ipv6(session, "2001:db8::/32")
        assert again == first  # stored allocations never move
        with pytest.raises(ValueError, match="unknown department"):
            plan_ipv6(session, "2001:db8::/32", {"NOPE"})
    rt.close()
    prefixes = [ipaddress.IPv6Network(d["ipv6_prefix"]) for d in first]
    register_v6 = ipaddress.IPv6Network("2001:db8:1000::/48")  # recorded in the sample register
    assert len(prefixes) == len(set(prefixes)) >= 30 and not any(p.overlaps(register_v6) for p in prefixes)
    addresses = [h["ipv6"] for d in first for h in d["hosts"]]
    assert len(addresses) == len(set(addresses)) > 300
    for dept in first:
        for net in dept["networks"]:
            assert ipaddress.IPv6Network(net["ipv6_prefix"]).subnet_of(ipaddress.IPv6Network(dept["ipv6_prefix"]))
        lan = ipaddress.IPv6Network(dept["networks"][-1]["ipv6_prefix"])
        assert all(ipaddress.IPv6Address(h["ipv6"]) in lan for h in dept["hosts"])


def test_cli_plan(tmp_path: Path) -> None:
    rt = make_runtime(tmp_path / "var")
    load_sample(rt)
    rt.close()

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return run_cli(tmp_path / "var", "net", "plan-ipv6", *args, timeout=120)

    done = cli("--scope", "GAJ")
    assert done.returncode == 0, done.stderr
    [gaj] = [json.loads(line) for line in done.stdout.splitlines()]
    assert gaj["department"] == "GAJ" and gaj["ipv6_prefix"].endswith("/48") and gaj["hosts"]
    new = int(done.stderr.split(";")[1].split("new allocations")[0])
    assert new == 2 + len(gaj["networks"]) - 1 + len(gaj["hosts"])  # the /48, its networks and LAN /64s, hosts
    assert json.loads(cli("--scope", "GAJ").stdout) == gaj
    assert "; 0 new allocations" in cli("--scope", "GAJ").stderr
    bad = cli("--scope", "NOPE")
    assert bad.returncode == 2 and "unknown department" in bad.stderr
