"""Retro-hunting through the CLI and the API: a rule run over stored history, scoped like any search."""

from __future__ import annotations

import json
from pathlib import Path

from tests.shared_data import LOGHUB as SHARED_LOGHUB
from tests.shared_data import require
from tests.soc.test_ingest import _cli, _hosts, _wait_for, soc_portal  # noqa: F401 — soc_portal is a fixture

LOGHUB = require(SHARED_LOGHUB)
RULE = """title: root logins from one address
logsource: {product: linux, service: sshd}
detection:
  sel:
    user.name: root
    source.ip|cidr: 198.51.100.0/24
  condition: sel
level: medium
"""


def test_cli_hunt_by_builtin_rule_and_by_file(tmp_path: Path) -> None:
    home = tmp_path / "var"
    assert _cli(home, "soc", "ingest", str(LOGHUB / "Linux_2k.log")).returncode == 0
    failed = _cli(home, "soc", "hunt", "--rule-id", "yunshu_ssh_failed_login", "--limit", "1000")
    assert failed.returncode == 0, failed.stderr
    events = [json.loads(line) for line in failed.stdout.splitlines()]
    assert len(events) > 100 and all(e["event"]["outcome"] == "failure" for e in events)
    assert f"{len(events)} of {len(events)} matching events" in failed.stderr

    rule = tmp_path / "r.yml"
    rule.write_text("title: from one host\nlogsource: {product: linux}\ndetection:\n  sel:\n"
                    "    source.ip: 218.188.2.4\n  condition: sel\n")
    by_file = _cli(home, "soc", "hunt", "--rule", str(rule), "--limit", "1000")
    assert by_file.returncode == 0, by_file.stderr
    hits = [json.loads(line) for line in by_file.stdout.splitlines()]
    assert hits and {h["source"]["ip"] for h in hits} == {"218.188.2.4"}
    windowed = _cli(home, "soc", "hunt", "--rule", str(rule), "--to", "2000-01-01T00:00:00")
    assert windowed.returncode == 0 and windowed.stdout == ""

    rule.write_text("title: broken\ndetection: {condition: nope}\n")
    broken = _cli(home, "soc", "hunt", "--rule", str(rule))
    assert broken.returncode == 2 and "the rule does not load" in broken.stderr
    unknown = _cli(home, "soc", "hunt", "--rule-id", "no-such-rule")
    assert unknown.returncode == 2 and "no rule with id or name 'no-such-rule'" in unknown.stderr


def test_api_hunt_is_scoped(soc_portal) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    client, rt, tokens = soc_portal
    analyst = {"Authorization": f"Bearer {tokens['security_analyst']}"}
    gaj, rsj = _hosts(rt, "GAJ"), _hosts(rt, "RSJ")
    docs = [{"@timestamp": "2026-11-20T01:00:00Z", "message": "login", "user": {"name": "root"},
             "source": {"ip": f"198.51.100.{i}"}, "host": {"name": host.name}}
            for i, host in enumerate([gaj, rsj, gaj])]
    client.post("/api/soc/ingest", content="\n".join(json.dumps(d) for d in docs).encode(), headers=analyst)
    _wait_for(lambda: client.get("/api/soc/events", headers=analyst).json()["total"] == 3)

    everything = client.post("/api/soc/hunt", json={"rule": RULE}, headers=analyst).json()
    assert everything["total"] == 3 and everything["rule"]["title"] == "root logins from one address"
    gaj_only = client.post("/api/soc/hunt", json={"rule": RULE, "where": ["gov.department=GAJ"]}, headers=analyst)
    assert gaj_only.json()["total"] == 2
    builtin = client.post("/api/soc/hunt", json={"rule_id": "yunshu_ssh_failed_login"}, headers=analyst)
    assert builtin.status_code == 200 and builtin.json()["total"] == 0
    bad = client.post("/api/soc/hunt", json={"rule": "title: x\n"}, headers=analyst)
    assert bad.status_code == 422 and "does not load" in bad.json()["detail"]
    both = client.post("/api/soc/hunt", json={"rule": RULE, "rule_id": "x"}, headers=analyst)
    assert both.status_code == 422
    missing = client.post("/api/soc/hunt", json={"rule_id": "nope"}, headers=analyst)
    assert missing.status_code == 404
    dept = {"Authorization": f"Bearer {tokens['department_user']}"}
    assert client.post("/api/soc/hunt", json={"rule": RULE}, headers=dept).status_code == 403
