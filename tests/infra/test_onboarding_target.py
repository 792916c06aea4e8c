"""Where on-boarded hosts forward their logs: configured, the receiver's own address, or the lab controller."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.runtime import open_runtime
from core.settings import Settings
from infra.lab import Lab
from infra.onboarding import is_local_address, syslog_listen_addresses, syslog_target


def _target(home: Path, **soc: object) -> str | None:
    rt = open_runtime(Settings(home=home, soc=soc))  # type: ignore[arg-type]
    try:
        return syslog_target(rt)
    finally:
        rt.close()


def test_forward_target_choice(tmp_path: Path) -> None:
    assert _target(tmp_path / "a", syslog_forward_target="siem.example:6514") == "siem.example:6514"
    assert _target(tmp_path / "b", syslog_host="198.51.100.7", syslog_port=1514) == "198.51.100.7:1514"
    assert _target(tmp_path / "c", syslog_host="2001:db8::5") == "[2001:db8::5]:5514"
    assert _target(tmp_path / "d") is None  # loopback listener, no lab: the role's own default applies
    home = tmp_path / "e"
    lab = Lab(home, lab_id=2)
    lab.dir.mkdir(parents=True)
    lab.state_file.write_text("{}")  # a lab is up under this home
    assert _target(home, syslog_host="0.0.0.0") == "198.18.202.254:5514"


def _listen(home: Path, **soc: object) -> list[str]:
    rt = open_runtime(Settings(home=home, soc=soc))  # type: ignore[arg-type]
    try:
        return syslog_listen_addresses(rt)
    finally:
        rt.close()


def test_local_address_probe() -> None:
    assert is_local_address("127.0.0.1") and is_local_address("::1")
    assert not is_local_address("192.0.2.77")  # TEST-NET-1: never configured here


def test_receiver_listens_where_lab_hosts_forward(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert _listen(tmp_path / "a") == ["127.0.0.1"]  # no lab: loopback only
    home = tmp_path / "b"
    lab = Lab(home, lab_id=2)
    lab.dir.mkdir(parents=True)
    lab.state_file.write_text("{}")
    # the lab's state is there but its controller address is not on this machine (lab down): not bound
    monkeypatch.setattr("infra.onboarding.is_local_address", lambda address: False)
    assert _listen(home) == ["127.0.0.1"]
    monkeypatch.setattr("infra.onboarding.is_local_address", lambda address: address == "198.18.202.254")
    assert _listen(home) == ["127.0.0.1", "198.18.202.254"]
    assert _target(home) == "198.18.202.254:5514"  # the same address the hosts are told to forward to
    assert _listen(home, syslog_host="0.0.0.0") == ["0.0.0.0"]  # already listening everywhere
    assert _listen(home, syslog_forward_target="siem.example:6514") == ["127.0.0.1"]
