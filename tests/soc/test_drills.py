"""Drills: a scripted 攻防演练 replayed through the real pipeline, scored, completed, reported and audited."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from sqlalchemy import select

from core.audit import AuditEntry
from soc.drills.scenario import Scenario, scenarios
from tests.soc.test_ingest import soc_portal  # noqa: F401 — soc_portal is a fixture


def test_scenarios_are_valid_data(tmp_path: Path) -> None:
    assert "web-to-root" in scenarios()
    bad = tmp_path / "bad.yml"
    bad.write_text("code: x\ntitle: t\ntitle_en: t\ntype: attack_defense\nscenario: s\n"
                   "steps: [{name: a, technique: T99, target: h}]\n")
    with pytest.raises(ValueError, match="ATT&CK id"):
        scenarios.__wrapped__(tmp_path)


def test_scripted_drill_is_replayed_scored_completed_and_audited(soc_portal) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    client, rt, tokens = soc_portal
    analyst = {"Authorization": f"Bearer {tokens['security_analyst']}"}
    created = client.post("/api/soc/drills", json={"scenario": "web-to-root", "scope": ["GAJ-RKXX"]}, headers=analyst)
    assert created.status_code == 201, created.text
    drill_id = created.json()["drill"]["id"]
    assert created.json()["coverage"] is None and len(created.json()["steps"]) == 7

    result = client.post(f"/api/soc/drills/{drill_id}/replay", headers=analyst).json()
    detected = {s["name"]: s["detected"] for s in result["steps"]}
    scenario: Scenario = scenarios()["web-to-root"]
    assert detected == {s.name: s.expected_rule is not None for s in scenario.steps}  # only the step without a rule
    assert result["executed_steps"] == 7 and result["detected_steps"] == 6
    assert result["coverage"] == round(6 / 7, 4)
    scan = result["steps"][0]
    assert scan["alerts"][0]["title"] == "Port scan seen by the firewall" and scan["alerts"][0]["method"] == "auto"
    assert scan["mttd_seconds"] == 19.0  # the twentieth port, one per second, completes the correlation
    assert all(s["mttd_seconds"] is None or s["mttd_seconds"] >= 0 for s in result["steps"])
    assert result["mttr_seconds"] is None  # nothing resolved yet

    first_alert = scan["alerts"][0]["id"]
    client.post(f"/api/soc/alerts/{first_alert}/transition", json={"status": "resolved", "note": "演练告警"},
                headers=analyst)
    finding = client.post(f"/api/soc/drills/{drill_id}/findings", headers=analyst, json={
        "title": "跳板机允许口令登录", "remediation": "关闭 PasswordAuthentication，改用密钥和堡垒机",
        "severity": "high", "step_seq": 3, "owner": "ops"})
    assert finding.status_code == 201
    done = client.post(f"/api/soc/drills/{drill_id}/complete", headers=analyst).json()
    assert done["drill"]["status"] == "completed" and done["mttr_seconds"] is not None
    gaps = [f for f in done["findings"] if f["title"].startswith("检测缺口")]
    assert len(gaps) == 1 and "T1021.004" in gaps[0]["title"] and len(done["findings"]) == 2
    assert client.post(f"/api/soc/drills/{drill_id}/complete", headers=analyst).status_code == 409
    assert client.post(f"/api/soc/drills/{drill_id}/replay", headers=analyst).status_code == 409

    report = client.get(f"/api/soc/drills/{drill_id}/report?format=json", headers=analyst)
    digest = hashlib.sha256(report.content).hexdigest()
    html = client.get(f"/api/soc/drills/{drill_id}/report", headers=analyst).text
    assert "检测覆盖率" in html and "86%" in html and digest in html and "T1021.004" in html
    with rt.sessions() as s:
        actions = [(e.action, json.loads(e.payload)) for e in s.scalars(select(AuditEntry).where(
            AuditEntry.object_type == "drill").order_by(AuditEntry.seq))]
    assert [a for a, _ in actions] == ["drill.create", "drill.replay", "drill.complete"]
    assert actions[-1][1]["report_sha256"] == digest and actions[-1][1]["coverage"] == round(6 / 7, 4)

    other = client.post("/api/soc/drills", json={"scenario": "web-to-root"}, headers=analyst).json()["drill"]["id"]
    linked = client.post(f"/api/soc/drills/{other}/steps/1/links", json={"alert_id": first_alert}, headers=analyst)
    assert linked.status_code == 201 and linked.json()["steps"][0]["alerts"][0]["method"] == "manual"
    again = client.post(f"/api/soc/drills/{other}/steps/1/links", json={"alert_id": first_alert}, headers=analyst)
    assert again.status_code == 409
    assert client.post("/api/soc/drills", json={"scenario": "nope"}, headers=analyst).status_code == 422
    dept = {"Authorization": f"Bearer {tokens['department_user']}"}
    assert client.post("/api/soc/drills", json={"scenario": "web-to-root"}, headers=dept).status_code == 403
    assert client.get(f"/api/soc/drills/{drill_id}", headers=dept).status_code == 200


def test_cli_drill_run_and_report(tmp_path: Path) -> None:
    from tests.soc.test_ingest import _cli

    home = tmp_path / "var"
    run = _cli(home, "soc", "drill", "run", "web-to-root", "--complete")
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["drill"]["status"] == "completed" and result["detected_steps"] == 6
    out = tmp_path / "report.html"
    report = _cli(home, "soc", "drill", "report", str(result["drill"]["id"]), "-o", str(out))
    assert report.returncode == 0 and "演练报告" in out.read_text(encoding="utf-8")
    assert json.loads(_cli(home, "soc", "drill", "report", str(result["drill"]["id"]), "--format", "json").stdout)[
        "coverage"] == result["coverage"]
    assert _cli(home, "soc", "drill", "run", "no-such").returncode == 2
    assert _cli(home, "soc", "drill", "report", "999").returncode == 2


def test_a_real_drill_records_its_timeline_and_links_alerts(soc_portal) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    """A drill of the team's own (no replay): steps are marked executed as the red team reports them."""
    from datetime import UTC, datetime, timedelta

    from tests.soc.test_ingest import _wait_for

    client, _rt, tokens = soc_portal
    analyst = {"Authorization": f"Bearer {tokens['security_analyst']}"}
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    body = {"title": "2026 年度应急演练", "type": "emergency", "description": "暴力破解处置",
            "teams": {"red": ["红队"], "blue": ["蓝队"]}, "planned_start": start.isoformat(),
            "steps": [{"name": "暴力破解", "technique": "T1110.001", "target": "198.51.100.77"},
                      {"name": "数据窃取", "technique": "T1041", "target": "db01", "offset_seconds": 600}]}
    created = client.post("/api/soc/drills", json=body, headers=analyst)
    assert created.status_code == 201, created.text
    drill_id = created.json()["drill"]["id"]
    assert created.json()["drill"]["scenario"] is None
    assert client.post(f"/api/soc/drills/{drill_id}/replay", headers=analyst).status_code == 422

    events = [{"@timestamp": (start + timedelta(seconds=5 * i)).isoformat(), "message": "Failed password",
               "event": {"dataset": "system.auth", "action": "ssh_login", "outcome": "failure"},
               "source": {"ip": "198.51.100.77"}, "host": {"name": "bastion09"}} for i in range(10)]
    client.post("/api/soc/ingest", content="\n".join(json.dumps(e) for e in events).encode(), headers=analyst)
    _wait_for(lambda: client.get("/api/soc/alerts", headers=analyst).json()["total"] == 1)
    marked = client.post(f"/api/soc/drills/{drill_id}/steps/1/executed", json={"at": start.isoformat()},
                         headers=analyst).json()
    assert marked["drill"]["status"] == "running" and marked["steps"][0]["detected"] is True
    assert marked["steps"][0]["mttd_seconds"] == 45.0 and marked["coverage"] == 1.0
    bad = client.post("/api/soc/drills", json={**body, "steps": [{"name": "x", "technique": "bogus", "target": "h"}]},
                      headers=analyst)
    assert bad.status_code == 422 and "ATT&CK" in bad.text
