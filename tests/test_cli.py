"""The ``yunshu`` user and token commands, run as a user would (a real process, its own YUNSHU_HOME)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from fastapi.testclient import TestClient

from portal.app import create_app
from tests.conftest import PASSWORD, load_sample, make_runtime, run_cli


def test_user_add_and_token_create(tmp_path: Path) -> None:
    home = tmp_path / "var"
    rt = make_runtime(home)
    load_sample(rt)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return run_cli(home, *args, timeout=120, env={"PW": PASSWORD, "WEAK": "password"})

    weak = cli("user", "add", "bob", "--role", "department_user", "--department", "GAJ", "--password-env", "WEAK")
    assert weak.returncode == 1 and "password rejected" in weak.stderr
    nodept = cli("user", "add", "bob", "--role", "department_user", "--department", "XYZ", "--password-env", "PW")
    assert nodept.returncode == 1 and "unknown department 'XYZ'" in nodept.stderr
    ok = cli("user", "add", "bob", "--role", "department_user", "--department", "GAJ", "--password-env", "PW")
    assert ok.returncode == 0, ok.stderr
    again = cli("user", "add", "bob", "--role", "auditor", "--password-env", "PW")
    assert again.returncode == 1 and "already exists" in again.stderr
    token = cli("token", "create", "--user", "bob", "--name", "ci")
    assert token.returncode == 0 and "shown once" in token.stderr
    raw = token.stdout.strip()
    assert raw.startswith("ysk_")
    with TestClient(create_app(rt)) as client:
        me = client.get("/api/me", headers={"Authorization": f"Bearer {raw}"}).json()
        assert (me["username"], me["role"], me["department"]) == ("bob", "department_user", "GAJ")
        verify = client.get("/api/audit/verify", headers={"Authorization": f"Bearer {raw}"})
        assert verify.status_code == 403
    rt.close()
    unknown = cli("token", "create", "--user", "nobody", "--name", "x")
    assert unknown.returncode == 1 and "unknown user" in unknown.stderr


def test_net_waves_and_wave_run_errors(tmp_path: Path) -> None:
    """`yunshu net waves` prints the plan; `wave-run` names a wave that does not exist; `jobs list` starts empty."""
    import json

    home = tmp_path / "var"
    rt = make_runtime(home)
    load_sample(rt)
    rt.close()

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return run_cli(home, *args, timeout=120)

    waves = [json.loads(line) for line in cli("net", "waves", "--size", "4").stdout.splitlines()]
    assert waves and [w["wave"] for w in waves] == list(range(1, len(waves) + 1))
    assert all(1 <= len(w["systems"]) <= 4 for w in waves)
    assert [w["mlps_level"] for w in waves] == sorted(w["mlps_level"] for w in waves)
    missing = cli("net", "wave-run", str(len(waves) + 1), "--size", "4")
    assert missing.returncode == 2 and f"there is no wave {len(waves) + 1}" in missing.stderr
    assert cli("jobs", "list").stdout == ""
    bad = cli("net", "waves", "--size", "0")
    assert bad.returncode == 2 and "wave size must be at least 1" in bad.stderr
