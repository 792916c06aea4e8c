"""``yunshu tickets …`` run as an operator would: a real process on its own YUNSHU_HOME."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml

from tests.conftest import run_cli, sample_home_with_users

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "inventory" / "samples" / "tickets"


def test_submit_approve_show_from_the_command_line(tmp_path: Path) -> None:
    home = tmp_path / "var"
    sample_home_with_users(home, [("gaj-user", "department_user", "GAJ"), ("reviewer", "security_reviewer", None),
                                  ("approver", "resource_approver", None)])

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return run_cli(home, "tickets", *args)

    submitted = cli("submit", str(SAMPLES / "change.yaml"), "--as", "gaj-user")
    assert submitted.returncode == 0, submitted.stderr
    ticket = json.loads(submitted.stdout)
    ref = ticket["id"]
    assert ticket["state"] == "security_review" and ticket["requester"] == "gaj-user"
    own = cli("approve", ref, "--as", "gaj-user")
    assert own.returncode == 1 and "tickets.review" in own.stderr
    reviewed = cli("approve", ref, "--as", "reviewer", "--note", "安全审核通过")
    assert reviewed.returncode == 0, reviewed.stderr
    assert json.loads(reviewed.stdout)["state"] == "resource_approval"
    reject = cli("reject", ref, "--as", "approver")
    assert reject.returncode == 1 and "reason" in reject.stderr
    approved = cli("approve", ref, "--as", "approver")
    assert approved.returncode == 0, approved.stderr
    out = json.loads(approved.stdout)
    assert out["state"] == "delivered"
    assert [(j["kind"], j["status"]) for j in out["jobs"]] == [("provision", "planned"), ("onboard", "not_run")]
    shown = cli("show", ref.removeprefix("TKT-").lstrip("0"))
    assert shown.returncode == 0 and json.loads(shown.stdout)["id"] == ref
    assert "plan — nothing applied" in json.loads(shown.stdout)["jobs"][0]["result"]["notice"]

    bad = yaml.safe_load((SAMPLES / "cloud_resources.yaml").read_text(encoding="utf-8"))
    bad["resources"]["systems"][0]["ingress"].append({"protocol": "tcp", "port_min": 22, "remote_cidr": "0.0.0.0/0"})
    bad_file = tmp_path / "ssh-open.yaml"
    bad_file.write_text(yaml.safe_dump(bad, allow_unicode=True), encoding="utf-8")
    refused = cli("submit", str(bad_file), "--as", "gaj-user")
    assert refused.returncode == 1
    assert json.loads(refused.stdout)["state"] == "rejected"
    assert "admission rejected" in refused.stderr and "YS-CLOUD-001" in refused.stderr and "0.0.0.0/0" in refused.stderr

    assert cli("submit", str(tmp_path / "missing.yaml"), "--as", "gaj-user").returncode == 2
    nobody = cli("submit", str(SAMPLES / "change.yaml"), "--as", "nobody")
    assert nobody.returncode == 2 and "unknown or inactive user 'nobody'" in nobody.stderr
    lines = cli("list", "--as", "gaj-user").stdout.splitlines()
    assert {json.loads(line)["id"] for line in lines} >= {ref}
