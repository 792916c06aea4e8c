"""Where on-boarded hosts forward their logs: configured, the receiver's own address, or the lab controller."""

from __future__ import annotations

from pathlib import Path

from core.runtime import open_runtime
from core.settings import Settings
from infra.lab import Lab
from infra.onboarding import syslog_target


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
