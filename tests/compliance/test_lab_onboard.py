"""A lab host before and after onboard.yml (lab 9, CI runs as root): evidence.yml read before hardening turns the
host checks 不符合, the same checks are 符合 once `yunshu onboard` has run; the collectors also probe the lab web
server (clear-text HTTP, no TLS) and store evaluations whose trend shows the improvement."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from infra.onboarding import syslog_target
from policies.mlps.checks import REGISTRY, CheckContext
from policies.mlps.results import Result
from portal.app import create_app
from portal.compliance.collect import collect
from portal.compliance.remediation import open_remediation_ticket
from portal.compliance.store import record_answer, run_evaluation, trend
from portal.job_events import DATASET
from portal.security import create_token, create_user
from portal.tickets import service as svc
from soc.store.base import SearchQuery
from tests.conftest import PASSWORD
from tests.infra.lab_env import LabEnv, lab_env
from tests.soc.test_ingest import _ingest_metrics

SYSTEM = "SYS-LAB-WEB"
HOST_UNIT = "L2-CES1-01"  # 身份鉴别: linked to host baseline checks (a remediation of it runs onboard.yml again)
PWQUALITY = Path(f"/usr/lib/{os.uname().machine}-linux-gnu/security/pam_pwquality.so")
HOST_CHECKS = sorted(c for c, spec in REGISTRY.items() if spec.source == "hosts")
# What onboard.yml's baseline sets and evidence.yml reads back (password complexity only counts once PAM enforces
# it, i.e. where pam_pwquality is installed: lab hosts share this machine's /usr).
FLIPPED = {"host.login_failure_lockout", "host.session_timeout"} | (
    {"host.password_complexity"} if PWQUALITY.exists() else set())


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabEnv]:
    with lab_env(tmp_path_factory.mktemp("mlps-lab"), hosts=1, lab_id=9) as env:
        yield env


def _yunshu(env: LabEnv, *args: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "YUNSHU_HOME": str(env.home), "USER": "ops-engineer"}
    return subprocess.run([sys.executable, "-m", "portal.cli", *args], capture_output=True, text=True,
                          env=environ, timeout=900)


def _host_results(env: LabEnv) -> tuple[dict[str, Result], dict]:
    collected = collect(env.rt, SYSTEM, probe_timeout=2.0)
    ev = collected.evidence
    assert ev.hosts and [h.name for h in ev.hosts] == ["lab-h01"]
    ctx = CheckContext(level=ev.system.mlps_level)
    return {cid: REGISTRY[cid].fn(ev, ctx).result for cid in HOST_CHECKS}, collected.details


def test_host_checks_turn_compliant_after_onboard(env: LabEnv) -> None:
    before_run = _yunshu(env, "evidence", "collect", SYSTEM)
    assert before_run.returncode == 0, before_run.stderr[-3000:]
    job = json.loads(before_run.stdout.splitlines()[-1])
    before, details = _host_results(env)
    assert details["hosts"]["hosts"]["lab-h01"]["job_id"] == job["id"]
    assert details["hosts"]["without_evidence"] == []
    (probe,) = details["crypto"]["probes"]
    assert probe["name"] == "lab-h01" and probe["plaintext_http"] is True  # nginx on :80, no TLS yet
    first, _ = run_evaluation(env.rt, SYSTEM, "auditor")

    onboard = _yunshu(env, "onboard", SYSTEM)
    assert onboard.returncode == 0, onboard.stderr[-3000:]
    after, _ = _host_results(env)
    second, _ = run_evaluation(env.rt, SYSTEM, "auditor")

    flipped = {c for c in HOST_CHECKS if before[c] is Result.NON_COMPLIANT and after[c] is Result.COMPLIANT}
    assert flipped >= FLIPPED, {c: (before[c].value, after[c].value) for c in sorted(FLIPPED - flipped)}
    assert (before["host.baseline_applied"], after["host.baseline_applied"]) == (Result.PENDING, Result.COMPLIANT)
    assert not [c for c in HOST_CHECKS if before[c] is Result.COMPLIANT and after[c] is Result.NON_COMPLIANT]
    with env.rt.sessions() as session:
        runs = trend(session, SYSTEM)
    assert [r["id"] for r in runs] == [first.id, second.id]
    assert runs[1]["counts"]["符合"] > runs[0]["counts"]["符合"]
    assert runs[1]["evidence_digests"]["hosts:lab-h01"] != runs[0]["evidence_digests"]["hosts:lab-h01"]


def _reviewer_token(env: LabEnv) -> str:
    with env.rt.transaction() as session:
        user = create_user(session, env.rt.audit, env.rt.settings.portal, actor="test", username="lab-reviewer",
                           role="security_reviewer", password=PASSWORD)
        return create_token(session, env.rt.audit, actor="test", user=user, name="t")[1]


def _remediation_ticket(env: LabEnv) -> str:
    """A 等保整改 ticket for a host baseline item of the lab system, in security review."""
    with env.rt.transaction() as session:
        record_answer(session, env.rt, SYSTEM, unit=HOST_UNIT, result="不符合", auditor="auditor",
                      note="口令复杂度未配置")
    _, report = run_evaluation(env.rt, SYSTEM, "auditor", probe_targets=[])
    with env.rt.transaction() as session:
        lab_user = svc.Actor("lab-user", "department_user", frozenset({"LAB"}))
        ticket = open_remediation_ticket(session, env.rt.audit, lab_user, report, HOST_UNIT, submit=True)
        assert ticket.state == "security_review", ticket.admission
        return ticket.ref


def test_server_ticket_onboarding_stores_job_events_in_its_soc(env: LabEnv) -> None:
    """The server's own on-boarding job (security review of the ticket → onboard.yml on the lab, as a background
    task) forwards its events to the server's SOC (dataset yunshu.ansible, labels.job_id) and /metrics counts
    them under source job."""
    ref, token = _remediation_ticket(env), _reviewer_token(env)
    auth = {"Authorization": f"Bearer {token}"}
    with TestClient(create_app(env.rt)) as client:
        before = _ingest_metrics(client.get("/metrics").text)
        reviewed = client.post(f"/api/tickets/{ref}/review", headers=auth, json={"approve": True})
        assert reviewed.status_code == 200, reviewed.text
        (job,) = client.get(f"/api/tickets/{ref}", headers=auth).json()["jobs"]
        assert job["kind"] == "onboard" and job["status"] == "successful", job
        soc = client.app.state.soc.soc  # type: ignore[attr-defined]
        query = SearchQuery(where={"event.dataset": DATASET, "labels.job_id": str(job["infra_job_id"])}, limit=500)
        found = [event for _, event in soc.store.search(query).hits]
        stored = soc.store.count(query)
        after = _ingest_metrics(client.get("/metrics").text)
    assert "job" not in before and job["infra_job_id"] is not None
    assert {e["event"]["action"] for e in found} >= {"playbook_on_play_start", "runner_on_ok", "playbook_on_stats"}
    assert {e["host"]["name"] for e in found if "host" in e} == {"lab-h01"}
    assert after["job"]["stored"] == after["job"]["received"] == stored >= len(found) > 0
    # as `yunshu onboard`, the hosts were pointed at this control plane's receiver (not the playbook's default)
    assert _extravars(env, job["infra_job_id"]).get("yunshu_syslog_target") == syslog_target(env.rt) is not None


def _extravars(env: LabEnv, job_id: int) -> dict:
    """The extra variables ansible-runner passed to the job's ansible-playbook (``-e @env/extravars``)."""
    path = env.rt.settings.home / "jobs" / str(job_id) / "env" / "extravars"
    return json.loads(path.read_text()) if path.exists() else {}
