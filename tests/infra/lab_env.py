"""A registered lab for tests that run playbooks (CI runs as root); each test module takes its own lab id."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.runtime import Runtime
from infra.ansible_run import write_inventory
from infra.lab import Lab
from infra.lab_register import start_registered_lab
from tests.conftest import make_runtime


@dataclass
class LabEnv:
    lab: Lab
    rt: Runtime
    home: Path

    def inventory(self, name: str = "inventory.yml", ipv6: bool = True) -> Path:
        """The register (with the lab) as a YAML inventory, IPv6 plan included."""
        with self.rt.transaction() as session:
            return write_inventory(session, self.home / name, lab=self.lab,
                                   ipv6_block=self.rt.settings.net.ipv6_block if ipv6 else None)


@contextmanager
def lab_env(home: Path, hosts: int, lab_id: int) -> Iterator[LabEnv]:
    """Runtime + registered lab ``lab_id`` of ``hosts`` hosts; torn down afterwards."""
    if os.geteuid() != 0:
        pytest.fail("lab tests need root (CI runs as root): network namespaces and bridges")
    rt = make_runtime(home)
    Lab(home, lab_id).down()
    lab = start_registered_lab(rt, hosts, lab_id)
    try:
        yield LabEnv(lab, rt, home)
    finally:
        lab.down()
        rt.close()
