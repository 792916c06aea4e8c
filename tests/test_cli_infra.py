"""``yunshu infra plan TICKET``: the ticket's Pulumi program in plan mode, as JSON; nothing applied or stored."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from sqlalchemy import func, select

from inventory.ipam import IpamAllocation
from tests.conftest import PASSWORD, load_sample, make_runtime

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "inventory" / "samples" / "tickets"


def test_infra_plan_of_a_ticket(tmp_path: Path) -> None:
    from portal.security import create_user

    home = tmp_path / "var"
    rt = make_runtime(home)
    load_sample(rt)
    with rt.transaction() as session:
        create_user(session, rt.audit, rt.settings.portal, actor="test", username="gaj-user", role="department_user",
                    password=PASSWORD, department="GAJ")
    env = {"YUNSHU_HOME": str(home), "PATH": "/usr/bin"}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "portal.cli", *args], env=env, cwd=REPO, capture_output=True,
                              text=True, timeout=300)

    submitted = cli("tickets", "submit", str(SAMPLES / "cloud_resources.yaml"), "--as", "gaj-user")
    assert submitted.returncode == 0, submitted.stderr
    ref = json.loads(submitted.stdout)["id"]
    with rt.sessions() as session:
        allocations = session.scalar(select(func.count()).select_from(IpamAllocation))
    planned = cli("infra", "plan", ref)
    assert planned.returncode == 0, planned.stderr
    result = json.loads(planned.stdout)
    assert result["mode"] == "plan" and result["applied"] is False and "nothing applied" in result["notice"]
    assert result["resources"] and all(r["type"] for r in result["resources"])
    assert result["policy"]["passed"] is True
    with rt.sessions() as session:  # the plan stored nothing
        assert session.scalar(select(func.count()).select_from(IpamAllocation)) == allocations
    rt.close()
    missing = cli("infra", "plan", "TKT-424242")
    assert missing.returncode == 2 and "no ticket TKT-424242" in missing.stderr
