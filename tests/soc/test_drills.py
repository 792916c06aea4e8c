"""Drills: a scripted 攻防演练 replayed through the real pipeline, scored, completed, reported and audited."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

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
    unknown = client.post("/api/soc/drills", json={"scenario": "web-to-root", "scope": ["SYS-RSJ-001", "GAJ-RKXX"]},
                          headers=analyst)
    assert unknown.status_code == 422 and "GAJ-RKXX" in unknown.json()["detail"]
    assert "SYS-RSJ-001" not in unknown.json()["detail"]
    created = client.post("/api/soc/drills", json={"scenario": "web-to-root", "scope": ["SYS-RSJ-001"]},
                          headers=analyst)
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
    # time to detect runs from when the step's logs entered the pipeline to when the SOC raised the alert; the
    # alert's first_seen is the scan's event time (the replay keeps the scenario's timeline) and must not count
    alert = client.get(f"/api/soc/alerts/{scan['alerts'][0]['id']}", headers=analyst).json()
    raised = datetime.fromisoformat(alert["created_at"])
    first_seen = datetime.fromisoformat(alert["first_seen"])
    executed = datetime.fromisoformat(scan["executed_at"])
    assert scan["mttd_seconds"] == pytest.approx((raised - executed).total_seconds(), abs=1e-3)
    assert 0 <= scan["mttd_seconds"] < 60
    assert abs((first_seen - executed).total_seconds() - scan["mttd_seconds"]) > 1  # the old, event-time measure
    mttds = [s["mttd_seconds"] for s in result["steps"] if s["mttd_seconds"] is not None]
    assert len(mttds) == 6 and all(m >= 0 for m in mttds)
    assert result["mttd_seconds"] == round(sum(mttds) / len(mttds), 1)
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
    assert [a for a, _ in actions] == ["drill.create", "drill.replay", "drill.finding.add", "drill.finding.add",
                                       "drill.complete"]
    assert actions[2][1]["title"] == "跳板机允许口令登录" and actions[2][1]["step"] == 3
    assert actions[3][1]["title"].startswith("检测缺口") and actions[3][1]["severity"] == "high"
    assert actions[-1][1]["report_sha256"] == digest and actions[-1][1]["coverage"] == round(6 / 7, 4)

    other = client.post("/api/soc/drills", json={"scenario": "web-to-root"}, headers=analyst).json()["drill"]["id"]
    linked = client.post(f"/api/soc/drills/{other}/steps/1/links", json={"alert_id": first_alert}, headers=analyst)
    assert linked.status_code == 201 and linked.json()["steps"][0]["alerts"][0]["method"] == "manual"
    again = client.post(f"/api/soc/drills/{other}/steps/1/links", json={"alert_id": first_alert}, headers=analyst)
    assert again.status_code == 409
    assert client.post("/api/soc/drills", json={"scenario": "nope"}, headers=analyst).status_code == 422
    dept = {"Authorization": f"Bearer {tokens['department_user']}"}
    assert client.post("/api/soc/drills", json={"scenario": "web-to-root"}, headers=dept).status_code == 403
    # the drill covers a system of 市人社局 only: a 市公安局 user neither lists nor reads it, nor its report
    assert client.get(f"/api/soc/drills/{drill_id}", headers=dept).status_code == 404
    assert client.get(f"/api/soc/drills/{drill_id}/report", headers=dept).status_code == 404
    assert client.get("/api/soc/drills", headers=dept).json() == []
    assert {d["id"] for d in client.get("/api/soc/drills", headers=analyst).json()} == {drill_id, other}
    with rt.sessions() as s:
        link = s.scalars(select(AuditEntry).where(AuditEntry.action == "drill.link")).one()
    assert link.object_id == str(other) and link.actor == "security-analyst"
    assert json.loads(link.payload) == {"step": 1, "alert": first_alert}


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
    assert marked["coverage"] == 1.0
    alert = client.get(f"/api/soc/alerts/{marked['steps'][0]['alerts'][0]['id']}", headers=analyst).json()
    raised, first_seen = datetime.fromisoformat(alert["created_at"]), datetime.fromisoformat(alert["first_seen"])
    assert first_seen == start + timedelta(seconds=45)  # the tenth failure completes the correlation
    # the SOC raised the alert when the events arrived (about ten minutes after the step), not at the event time
    assert marked["steps"][0]["mttd_seconds"] == pytest.approx((raised - start).total_seconds(), abs=1e-3)
    assert marked["steps"][0]["mttd_seconds"] >= 600 and marked["mttd_seconds"] >= 600
    with _rt.sessions() as s:
        steps = [json.loads(e.payload) for e in s.scalars(select(AuditEntry).where(
            AuditEntry.action == "drill.step", AuditEntry.object_id == str(drill_id)))]
    assert steps == [{"step": 1, "executed_at": start.isoformat()}]
    bad = client.post("/api/soc/drills", json={**body, "steps": [{"name": "x", "technique": "bogus", "target": "h"}]},
                      headers=analyst)
    assert bad.status_code == 422 and "ATT&CK" in bad.text


def _brute_force(client, headers, start: datetime, source: str, host: str) -> None:  # type: ignore[no-untyped-def]
    events = [{"@timestamp": (start + timedelta(seconds=5 * i)).isoformat(), "message": "Failed password",
               "event": {"dataset": "system.auth", "action": "ssh_login", "outcome": "failure"},
               "source": {"ip": source}, "host": {"name": host}} for i in range(10)]
    client.post("/api/soc/ingest", content="\n".join(json.dumps(e) for e in events).encode(), headers=headers)


def test_department_user_sees_only_its_drills_and_its_alerts_in_them(soc_portal) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    from tests.soc.test_ingest import _wait_for

    client, _rt, tokens = soc_portal
    analyst = {"Authorization": f"Bearer {tokens['security_analyst']}"}
    dept = {"Authorization": f"Bearer {tokens['department_user']}"}  # 市公安局 (GAJ)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    _brute_force(client, analyst, start, "198.51.100.10", "gaj-rkxxgl-web01")  # SYS-GAJ-001
    _brute_force(client, analyst, start, "198.51.100.20", "rsj-shbxywjb-web01")  # SYS-RSJ-001
    _wait_for(lambda: client.get("/api/soc/alerts", headers=analyst).json()["total"] == 2)
    by_ip = {a["source_ip"]: a for a in client.get("/api/soc/alerts", headers=analyst).json()["items"]}
    assert by_ip["198.51.100.10"]["department"] == "GAJ" and by_ip["198.51.100.20"]["department"] == "RSJ"

    body = {"title": "联合演练", "type": "attack_defense", "planned_start": start.isoformat(),
            "steps": [{"name": "暴力破解 公安", "technique": "T1110.001", "target": "198.51.100.10"},
                      {"name": "暴力破解 人社", "technique": "T1110.001", "target": "198.51.100.20"}]}
    joint = client.post("/api/soc/drills", json={**body, "scope": ["SYS-GAJ-001", "SYS-RSJ-001"]}, headers=analyst)
    rsj_only = client.post("/api/soc/drills", json={**body, "scope": ["SYS-RSJ-001"]}, headers=analyst)
    unscoped = client.post("/api/soc/drills", json=body, headers=analyst)
    assert joint.status_code == rsj_only.status_code == unscoped.status_code == 201
    joint_id, rsj_id = joint.json()["drill"]["id"], rsj_only.json()["drill"]["id"]
    for seq in (1, 2):
        client.post(f"/api/soc/drills/{joint_id}/steps/{seq}/executed", json={"at": start.isoformat()},
                    headers=analyst)

    full = client.get(f"/api/soc/drills/{joint_id}", headers=analyst).json()
    assert [len(s["alerts"]) for s in full["steps"]] == [1, 1] and "alerts_hidden" not in full["steps"][0]
    assert len(client.get("/api/soc/drills", headers=analyst).json()) == 3

    assert [d["id"] for d in client.get("/api/soc/drills", headers=dept).json()] == [joint_id]
    assert client.get(f"/api/soc/drills/{rsj_id}", headers=dept).status_code == 404
    assert client.get(f"/api/soc/drills/{unscoped.json()['drill']['id']}", headers=dept).status_code == 404
    seen = client.get(f"/api/soc/drills/{joint_id}", headers=dept).json()
    assert seen["steps"][0]["alerts"] == full["steps"][0]["alerts"] and seen["steps"][0]["alerts_hidden"] == 0
    assert seen["steps"][1]["alerts"] == [] and seen["steps"][1]["alerts_hidden"] == 1
    assert seen["coverage"] == full["coverage"] == 1.0  # the drill's result is the same for every reader
    report = client.get(f"/api/soc/drills/{joint_id}/report?format=json", headers=dept).json()
    rsj_alert = full["steps"][1]["alerts"][0]
    assert rsj_alert["id"] == by_ip["198.51.100.20"]["id"]
    assert [[a["id"] for a in s["alerts"]] for s in report["steps"]] == [[by_ip["198.51.100.10"]["id"]], []]
    html = client.get(f"/api/soc/drills/{joint_id}/report", headers=dept).text
    assert html.count(rsj_alert["title"]) == 1  # the 公安 alert (same rule) is listed, the 人社 one is not
    assert "平均检测时间" in html and "alert's creation time" in html


def test_findings_move_to_closed_and_reopen_with_a_reason_audited(soc_portal) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    client, rt, tokens = soc_portal
    analyst = {"Authorization": f"Bearer {tokens['security_analyst']}"}
    dept = {"Authorization": f"Bearer {tokens['department_user']}"}
    drill_id = client.post("/api/soc/drills", json={"scenario": "web-to-root", "scope": ["SYS-GAJ-001"]},
                           headers=analyst).json()["drill"]["id"]
    added = client.post(f"/api/soc/drills/{drill_id}/findings", headers=analyst, json={
        "title": "WAF 未拦截 SQL 注入", "remediation": "启用 SQL 注入防护规则", "severity": "critical", "owner": "ops"})
    assert added.status_code == 201
    finding = added.json()["findings"][0]
    assert finding["status"] == "open" and finding["status_by"] == "security-analyst" and finding["closed_at"] is None
    url = f"/api/soc/drills/{drill_id}/findings/{finding['id']}/status"

    bad = client.post(url, json={"status": "done"}, headers=analyst)
    assert bad.status_code == 422 and "'done'" in bad.json()["detail"] and "in_progress" in bad.json()["detail"]
    assert client.post(url, json={"status": "closed"}, headers=dept).status_code == 403
    assert client.post(f"/api/soc/drills/{drill_id}/findings/9999/status", json={"status": "closed"},
                       headers=analyst).status_code == 404

    working = client.post(url, json={"status": "in_progress"}, headers=analyst)
    assert working.status_code == 200 and working.json()["findings"][0]["status"] == "in_progress"
    closed = client.post(url, json={"status": "closed", "reason": "规则已上线并经回放验证"}, headers=analyst).json()
    f = closed["findings"][0]
    assert f["status"] == "closed" and f["closed_by"] == "security-analyst" and f["closed_at"] is not None
    assert datetime.fromisoformat(f["closed_at"]) > datetime.now(UTC) - timedelta(minutes=1)
    again = client.post(url, json={"status": "closed"}, headers=analyst)
    assert again.status_code == 409 and "already closed" in again.json()["detail"]
    no_reason = client.post(url, json={"status": "open", "reason": "  "}, headers=analyst)
    assert no_reason.status_code == 422 and "reason" in no_reason.json()["detail"]
    reopened = client.post(url, json={"status": "open", "reason": "复测仍可注入"}, headers=analyst).json()
    f = reopened["findings"][0]
    assert f["status"] == "open" and f["closed_at"] is None and f["closed_by"] is None
    assert f["status_note"] == "复测仍可注入"
    html = client.get(f"/api/soc/drills/{drill_id}/report", headers=analyst).text
    assert "待整改 open" in html and "复测仍可注入" in html

    with rt.sessions() as s:
        entries = [(e.action, e.actor, json.loads(e.payload)) for e in s.scalars(select(AuditEntry).where(
            AuditEntry.object_type == "drill", AuditEntry.object_id == str(drill_id)).order_by(AuditEntry.seq))]
        assert rt.audit.verify(s).ok
    assert [a for a, _, _ in entries] == ["drill.create", "drill.finding.add"] + ["drill.finding.status"] * 3
    assert entries[1][2]["finding"] == finding["id"] and entries[1][2]["severity"] == "critical"
    moves = [(p["from"], p["to"], p["reason"], p["reopened"]) for _, _, p in entries[2:]]
    assert moves == [("open", "in_progress", None, False), ("in_progress", "closed", "规则已上线并经回放验证", False),
                     ("closed", "open", "复测仍可注入", True)]
    assert {actor for _, actor, _ in entries} == {"security-analyst"}


def _resolved_alert(session, first: datetime, resolve_seconds: float, host: str = "web01") -> int:  # type: ignore[no-untyped-def]
    from soc.alerts.models import Alert

    alert = Alert(rule_id="r", rule_title="brute", rule_level="high", group_key=str(first), group_fields={},
                  severity="high", score=3, status="resolved", host_name=host, attack=["attack.t1110"], count=1,
                  first_seen=first, last_seen=first, created_at=first, acknowledge_due=first, resolve_due=first,
                  acknowledged_at=first, resolved_at=first + timedelta(seconds=resolve_seconds))
    session.add(alert)
    session.flush()
    return alert.id


def test_times_with_offsets_mttr_per_alert_and_a_completed_drill_stays_as_audited(soc_portal) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    from zoneinfo import ZoneInfo

    client, rt, tokens = soc_portal
    analyst = {"Authorization": f"Bearer {tokens['security_analyst']}"}
    t0 = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
    shanghai = t0.astimezone(ZoneInfo("Asia/Shanghai"))  # 10:00+08:00, the same instant
    drill_id = client.post("/api/soc/drills", headers=analyst, json={
        "title": "m", "type": "attack_defense", "planned_start": shanghai.isoformat(),
        "steps": [{"name": "brute 1", "technique": "T1110", "target": "web01"},
                  {"name": "brute 2", "technique": "T1110", "target": "web01", "offset_seconds": 300}]}
    ).json()["drill"]["id"]
    with rt.transaction() as s:
        _resolved_alert(s, t0 + timedelta(minutes=1), 60)  # after step 1 only
        _resolved_alert(s, t0 + timedelta(minutes=6), 600)  # after step 2, and inside step 1's window as well
        earlier = _resolved_alert(s, t0 - timedelta(days=1), 5)
    client.post(f"/api/soc/drills/{drill_id}/steps/1/executed", headers=analyst, json={"at": shanghai.isoformat()})
    scored = client.post(f"/api/soc/drills/{drill_id}/steps/2/executed", headers=analyst,
                         json={"at": (shanghai + timedelta(minutes=5)).isoformat()}).json()
    assert scored["drill"]["planned_start"] == t0.isoformat()  # +08:00 input stored as the same instant in UTC
    assert [s["executed_at"] for s in scored["steps"]] == [t0.isoformat(), (t0 + timedelta(minutes=5)).isoformat()]
    assert [len(s["alerts"]) for s in scored["steps"]] == [2, 1]
    assert scored["mttr_seconds"] == 330.0  # two alerts (60 s and 600 s), one of them linked to both steps
    client.post(f"/api/soc/drills/{drill_id}/complete", headers=analyst)
    report = client.get(f"/api/soc/drills/{drill_id}/report?format=json", headers=analyst).content
    late_link = client.post(f"/api/soc/drills/{drill_id}/steps/1/links", headers=analyst, json={"alert_id": earlier})
    late_finding = client.post(f"/api/soc/drills/{drill_id}/findings", headers=analyst,
                               json={"title": "t", "remediation": "r"})
    assert (late_link.status_code, late_finding.status_code) == (409, 409), (late_link.text, late_finding.text)
    assert client.get(f"/api/soc/drills/{drill_id}/report?format=json", headers=analyst).content == report


@pytest.mark.parametrize(("method", "path", "body", "names"), [
    ("post", "/api/soc/drills", {"title": "x", "type": "emergency",
                                 "steps": [{"name": "s", "technique": "T1110", "target": "h", "offset_seconds": 1e12}]},
     "offset_seconds"),
    ("post", "/api/soc/drills", {"title": "x", "type": "emergency",
                                 "steps": [{"name": "s", "technique": "T1110", "target": "h",
                                            "offset_seconds": "inf"}]}, "offset_seconds"),
    ("post", "/api/soc/drills", {"title": "x", "type": "emergency", "planned_start": "0001-01-01T00:00:00Z",
                                 "steps": [{"name": "s", "technique": "T1110", "target": "h"}]}, "planned_start"),
    ("get", "/api/soc/alerts/99999999999999999999", None, "alert_id"),
    ("get", "/api/soc/drills/99999999999999999999", None, "drill_id"),
    ("get", "/api/soc/alerts?offset=99999999999999999999", None, "offset"),
    ("post", "/api/soc/drills/1/steps/1/links", {"alert_id": 99999999999999999999}, "alert_id"),
    ("post", "/api/soc/drills/1/steps/1/executed", {"at": "0001-01-01T00:00:00Z"}, "at"),
    ("post", "/api/soc/drills/1/findings", {"title": " ", "remediation": "r"}, "title"),
])
def test_out_of_range_input_is_a_422_naming_the_field(soc_portal, method: str, path: str, body: Any,  # type: ignore[no-untyped-def]  # noqa: F811
                                                       names: str) -> None:
    client, _rt, tokens = soc_portal
    analyst = {"Authorization": f"Bearer {tokens['security_analyst']}"}
    step = {"name": "s", "technique": "T1110", "target": "h"}
    client.post("/api/soc/drills", headers=analyst, json={"title": "d", "type": "emergency", "steps": [step]})
    response = getattr(client, method)(path, headers=analyst, **({"json": body} if body is not None else {}))
    assert response.status_code == 422, response.text
    assert names in response.text
