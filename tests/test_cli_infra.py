"""``yunshu infra plan TICKET``: the ticket's Pulumi program in plan mode, as JSON; nothing applied or stored."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import func, select

from inventory.ipam import IpamAllocation
from tests.conftest import make_runtime, run_cli, sample_home_with_users

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "inventory" / "samples" / "tickets"


def test_infra_plan_of_a_ticket(tmp_path: Path) -> None:
    home = tmp_path / "var"
    sample_home_with_users(home, [("gaj-user", "department_user", "GAJ")])
    rt = make_runtime(home)  # to look at what the command stored

    submitted = run_cli(home, "tickets", "submit", str(SAMPLES / "cloud_resources.yaml"), "--as", "gaj-user")
    assert submitted.returncode == 0, submitted.stderr
    ref = json.loads(submitted.stdout)["id"]
    with rt.sessions() as session:
        allocations = session.scalar(select(func.count()).select_from(IpamAllocation))
    planned = run_cli(home, "infra", "plan", ref)
    assert planned.returncode == 0, planned.stderr
    result = json.loads(planned.stdout)
    assert result["mode"] == "plan" and result["applied"] is False and "nothing applied" in result["notice"]
    assert result["resources"] and all(r["type"] for r in result["resources"])
    assert result["policy"]["passed"] is True
    with rt.sessions() as session:  # the plan stored nothing
        assert session.scalar(select(func.count()).select_from(IpamAllocation)) == allocations
    rt.close()
    missing = run_cli(home, "infra", "plan", "TKT-424242")
    assert missing.returncode == 2 and "no ticket TKT-424242" in missing.stderr
