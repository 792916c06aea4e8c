"""The 等保 API and console with the auditor role: evaluate, answer (name and time recorded, CSRF on the console),
download the signed report, see the trend; every other state-changing endpoint of the app refuses the auditor."""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from fastapi import FastAPI
from fastapi.testclient import TestClient

from portal.compliance.reports import verify_report
from tests.conftest import PASSWORD, Portal, open_portal

SYSTEM = "SYS-XFJ-002"  # level 3 on the government cloud, no web hosts (nothing to probe)
MANUAL = "L3-PSS1-01"
TICKET_SAMPLE = Path(__file__).resolve().parents[2] / "inventory" / "samples" / "tickets" / "change.yaml"
CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]+)"')
# State-changing endpoints the auditor may use: its own account, and the compliance answers / evaluations.
OWN_ACCOUNT = {("POST", "/login"), ("POST", "/logout"), ("POST", "/account/password"), ("POST", "/account/mfa"),
               ("POST", "/api/tokens"), ("DELETE", "/api/tokens/{token_id}")}
COMPLIANCE = {("POST", "/api/compliance/systems/{system_id}/evaluate"),
              ("POST", "/api/compliance/systems/{system_id}/answers"),
              ("POST", "/compliance/{system_id}/evaluate"), ("POST", "/compliance/{system_id}/answers")}


@pytest.fixture(scope="module")
def portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Portal]:
    with open_portal(tmp_path_factory, "mlps-web", mfa_required_roles=[]) as opened:
        yield opened


def test_auditor_evaluates_answers_and_downloads_the_signed_report(portal: Portal, tmp_path: Path) -> None:
    c, auditor = portal.client, portal.as_role("auditor")
    assert c.get(f"/api/compliance/systems/{SYSTEM}", headers=auditor).status_code == 404  # never evaluated
    first = c.post(f"/api/compliance/systems/{SYSTEM}/evaluate", headers=auditor)
    assert first.status_code == 200, first.text
    assert first.json()["actor"] == "auditor" and first.json()["level"] == 3
    result = c.get(f"/api/compliance/systems/{SYSTEM}", headers=auditor).json()
    assert result["system"]["id"] == SYSTEM and len(result["requirements"]) == result["items"]
    assert {"register", "soc", "drills", "crypto"} <= set(result["evidence"])

    answered = c.post(f"/api/compliance/systems/{SYSTEM}/answers", headers=auditor,
                      json={"unit": MANUAL, "result": "符合", "note": "安全策略文件已发布"})
    assert answered.status_code == 201 and answered.json()["auditor"] == "auditor"
    bad = c.post(f"/api/compliance/systems/{SYSTEM}/answers", headers=auditor, json={"unit": "L3-PSS1-99",
                                                                                        "result": "符合"})
    assert bad.status_code == 422 and "L3-PSS1-99 is not a requirement" in bad.json()["detail"]
    second = c.post(f"/api/compliance/systems/{SYSTEM}/evaluate", headers=auditor).json()
    assert second["answers_used"] == 1 and second["counts"]["符合"] == first.json()["counts"]["符合"] + 1
    trend = c.get(f"/api/compliance/systems/{SYSTEM}/trend", headers=auditor).json()
    assert [t["id"] for t in trend] == [first.json()["id"], second["id"]]
    assert c.get(f"/api/compliance/systems/{SYSTEM}/answers", headers=auditor).json()[0]["unit"] == MANUAL

    download = c.get(f"/api/compliance/systems/{SYSTEM}/report.zip", headers=auditor)
    assert download.status_code == 200 and download.headers["content-type"] == "application/zip"
    zipfile.ZipFile(io.BytesIO(download.content)).extractall(tmp_path)
    (folder,) = list(tmp_path.iterdir())
    assert folder.name == f"mlps-{SYSTEM}-{second['id']}"
    assert sorted(p.name for p in folder.iterdir()) == ["manifest.json", "manifest.sig", "report.csv",
                                                        "report.html", "report.json", "report_signing.pub"]
    assert verify_report(folder).ok
    systems = {s["id"]: s for s in c.get("/api/compliance/systems", headers=auditor).json()}
    assert systems[SYSTEM]["latest"]["id"] == second["id"] and systems["SYS-CGJ-004"]["supported"] is False
    level1 = c.post("/api/compliance/systems/SYS-CGJ-004/evaluate", headers=auditor)
    assert level1.status_code == 422 and "levels 2 and 3 only" in level1.json()["detail"]
    assert c.get("/api/compliance/systems/SYS-NOPE-001/trend", headers=auditor).status_code == 404


@pytest.mark.parametrize("role", ["department_user", "platform_engineer", "security_analyst", "resource_approver"])
def test_other_roles_cannot_use_the_compliance_endpoints(portal: Portal, role: str) -> None:
    c, headers = portal.client, portal.as_role(role)
    assert c.get("/api/compliance/systems", headers=headers).status_code == 403
    assert c.post(f"/api/compliance/systems/{SYSTEM}/evaluate", headers=headers).status_code == 403
    assert c.post(f"/api/compliance/systems/{SYSTEM}/answers", headers=headers,
                  json={"unit": MANUAL, "result": "符合"}).status_code == 403


def test_console_as_auditor_with_csrf(portal: Portal) -> None:
    c = TestClient(portal.client.app)
    page = c.get("/login")
    csrf = CSRF_INPUT.search(page.text).group(1)  # type: ignore[union-attr]
    assert c.post("/login", data={"username": "auditor", "password": PASSWORD, "csrf_token": csrf},
                  follow_redirects=False).status_code == 303
    listing = c.get("/compliance")
    assert listing.status_code == 200 and f'data-system="{SYSTEM}"' in listing.text
    assert "不在目录范围" in listing.text  # level-1 systems are marked
    page = c.get(f"/compliance/{SYSTEM}")
    token = CSRF_INPUT.search(page.text).group(1)  # type: ignore[union-attr]
    assert c.post(f"/compliance/{SYSTEM}/evaluate", follow_redirects=False).status_code == 403  # no CSRF token
    assert c.post(f"/compliance/{SYSTEM}/evaluate", data={"csrf_token": token},
                  follow_redirects=False).status_code == 303
    answered = c.post(f"/compliance/{SYSTEM}/answers", follow_redirects=False,
                      data={"csrf_token": token, "unit": "L3-PSS1-02", "result": "部分符合", "note": "制度不全"})
    assert answered.status_code == 303
    refused = c.post(f"/compliance/{SYSTEM}/answers", data={"unit": "L3-PSS1-02", "result": "符合"})
    assert refused.status_code == 403  # the form without its CSRF token
    page = c.get(f"/compliance/{SYSTEM}")
    assert 'id="high-risks"' in page.text and 'id="evidence"' in page.text and 'id="trend"' in page.text
    answers = page.text[page.text.index('id="answer-list"'):]
    assert "L3-PSS1-02" in answers and "制度不全" in answers and ">auditor<" in answers
    assert re.search(r"<code>[0-9a-f]{64}</code>", page.text)  # evidence digests
    report_link = re.search(r'href="(/compliance/[^"]+/report\.zip\?evaluation=\d+)"', page.text)
    assert report_link and c.get(report_link.group(1)).status_code == 200
    english = c.get(f"/compliance/{SYSTEM}?lang=en")
    assert "Evidence and digests" in english.text
    assert c.get("/compliance/SYS-CGJ-004").text.count("levels 2 and 3 only") == 1


def _state_changing_routes(app: FastAPI) -> list[tuple[str, str]]:
    found = []
    for route in app.routes:
        contexts = route.effective_route_contexts() if hasattr(route, "effective_route_contexts") else [route]
        for ctx in contexts:
            for method in sorted(getattr(ctx, "methods", None) or ()):
                if method in ("POST", "PUT", "PATCH", "DELETE"):
                    found.append((method, ctx.path))
    return sorted(set(found))


def test_auditor_is_read_only_everywhere_else(portal: Portal) -> None:
    """API routes with the auditor's token, console routes with its session and a valid CSRF token: 403 each.
    A real ticket (a department user's draft) stands behind the ticket routes, so refusals are not 404s."""
    ticket = portal.client.post("/api/tickets?draft=true", headers=portal.as_role("department_user"),
                                json=json.loads(json.dumps(yaml.safe_load(TICKET_SAMPLE.read_text(encoding="utf-8")),
                                                   default=str)))
    assert ticket.status_code == 201, ticket.text
    ref = str(ticket.json()["id"])
    values = {"system_id": SYSTEM, "ref": ref, "ticket_ref": ref, "action": "withdraw"}
    web = TestClient(portal.client.app)
    csrf = CSRF_INPUT.search(web.get("/login").text).group(1)  # type: ignore[union-attr]
    assert web.post("/login", data={"username": "auditor", "password": PASSWORD, "csrf_token": csrf},
                    follow_redirects=False).status_code == 303
    token = CSRF_INPUT.search(web.get("/").text).group(1)  # type: ignore[union-attr]
    routes = _state_changing_routes(portal.client.app)
    assert set(routes) >= COMPLIANCE and len(routes) > 20
    allowed = []
    for method, path in routes:
        if (method, path) in OWN_ACCOUNT | COMPLIANCE:
            continue
        url = re.sub(r"\{(\w+)(:\w+)?\}", lambda m: values.get(m.group(1), "1"), path)
        if path.startswith("/api/"):
            response = portal.client.request(method, url, headers=portal.as_role("auditor"), json={})
        else:
            response = web.request(method, url, data={"csrf_token": token}, follow_redirects=False)
        if response.status_code != 403:
            allowed.append((method, path, response.status_code))
    assert allowed == [], "\n".join(map(str, allowed))
    shown = portal.client.get(f"/api/tickets/{ref}", headers=portal.as_role("department_user")).json()
    assert shown["state"] == "draft"


def test_remediation_ticket_from_a_failed_item_api_and_console(portal: Portal) -> None:
    c, admin = portal.client, portal.as_role("admin")
    run = c.post(f"/api/compliance/systems/{SYSTEM}/evaluate", headers=admin)
    assert run.status_code == 200, run.text
    result = c.get(f"/api/compliance/systems/{SYSTEM}", headers=admin).json()
    failed = [r for r in result["requirements"] if r["result"] == "不符合"]
    passed = next(r for r in result["requirements"] if r["result"] == "符合")
    assert len(failed) >= 2
    url = f"/api/compliance/systems/{SYSTEM}/remediation"
    opened = c.post(url, headers=admin, json={"unit": failed[0]["unit"], "submit": True})
    assert opened.status_code == 201, opened.text
    out = opened.json()
    assert re.fullmatch(r"TKT-\d{6}", out["ticket"]) and out["state"] == "security_review"
    assert out["compliance"]["evaluation_id"] == run.json()["id"] and out["compliance"]["unit"] == failed[0]["unit"]
    ticket = c.get(f"/api/tickets/{out['ticket']}", headers=admin).json()
    assert ticket["type"] == "remediation" and ticket["system"] == SYSTEM and ticket["crypto_plan"] is None
    assert ticket["compliance"]["finding"].startswith(failed[0]["clause"])
    draft = c.post(url, headers=admin, json={"unit": failed[1]["unit"]})
    assert draft.status_code == 201 and draft.json()["state"] == "draft"
    refused = c.post(url, headers=admin, json={"unit": passed["unit"]})
    assert refused.status_code == 422 and "only 不符合 / 部分符合" in refused.json()["detail"]
    assert c.post(url, headers=portal.as_role("department_user"), json={"unit": failed[0]["unit"]}).status_code == 403
    assert c.post(url, headers=portal.as_role("auditor"), json={"unit": failed[0]["unit"]}).status_code == 403
    assert c.post("/api/compliance/systems/SYS-NOPE-001/remediation", headers=admin,
                  json={"unit": failed[0]["unit"]}).status_code == 404

    web = TestClient(portal.client.app)
    csrf = CSRF_INPUT.search(web.get("/login").text).group(1)  # type: ignore[union-attr]
    assert web.post("/login", data={"username": "admin", "password": PASSWORD, "csrf_token": csrf},
                    follow_redirects=False).status_code == 303
    page = web.get(f"/compliance/{SYSTEM}")
    forms = set(re.findall(r'class="inline remediation-form" data-unit="([^"]+)"', page.text))
    assert {r["unit"] for r in failed} <= forms and passed["unit"] not in forms and "开整改工单" in page.text
    token = CSRF_INPUT.search(page.text).group(1)  # type: ignore[union-attr]
    form_url = f"/compliance/{SYSTEM}/remediation"
    assert web.post(form_url, data={"unit": failed[1]["unit"], "submit": "1"}).status_code == 403  # no CSRF
    moved = web.post(form_url, data={"unit": failed[1]["unit"], "submit": "1", "csrf_token": token},
                     follow_redirects=False)
    assert moved.status_code == 303 and re.fullmatch(r"/tickets/TKT-\d{6}", moved.headers["location"])
    shown = web.get(moved.headers["location"])
    assert 'id="ticket-finding"' in shown.text and failed[1]["unit"] in shown.text and "等保整改" in shown.text
    assert 'data-state="security_review"' in shown.text

    auditor = TestClient(portal.client.app)
    csrf = CSRF_INPUT.search(auditor.get("/login").text).group(1)  # type: ignore[union-attr]
    auditor.post("/login", data={"username": "auditor", "password": PASSWORD, "csrf_token": csrf})
    assert "remediation-form" not in auditor.get(f"/compliance/{SYSTEM}").text  # auditors file no tickets
