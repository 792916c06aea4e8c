"""Network migration API and pages: KPIs scoped by department, waves, jobs readable by the right roles, gauges."""

from __future__ import annotations

from infra.jobs import Jobs
from tests.conftest import Portal


def test_kpis_are_scoped_to_the_callers_department(portal: Portal) -> None:
    city = portal.client.get("/api/net/kpis", headers=portal.as_role("platform_engineer")).json()
    own = portal.client.get("/api/net/kpis", headers=portal.as_role("department_user")).json()
    assert own[-1]["department"] == "_city" and "GAJ" in [k["department"] for k in own]
    assert all(k["department"].startswith("GAJ") for k in own[:-1])  # the bureau and its sub-units only
    assert all(k == next(c for c in city if c["department"] == k["department"]) for k in own[:-1])
    assert own[-1]["systems"] == sum(k["systems"] for k in own[:-1]) < city[-1]["systems"]
    assert city[-1]["systems"] == sum(k["systems"] for k in city[:-1])


def test_waves_and_jobs_permissions(portal: Portal) -> None:
    waves = portal.client.get("/api/net/waves?size=3", headers=portal.as_role("platform_engineer")).json()
    assert waves and all(len(w["systems"]) <= 3 for w in waves)
    assert portal.client.get("/api/jobs", headers=portal.as_role("department_user")).status_code == 403
    job_id = Jobs(portal.rt).create("ipv6_migration", "ipv6_dualstack.yml", {"departments": ["GAJ"]}, "ops")
    listed = portal.client.get("/api/jobs", headers=portal.as_role("auditor")).json()
    assert listed[0]["id"] == job_id and listed[0]["status"] == "queued"
    assert portal.client.get("/api/jobs/99999", headers=portal.as_role("auditor")).status_code == 404
    assert portal.client.get("/api/net/waves?size=0", headers=portal.as_role("auditor")).status_code == 422


def test_metrics_export_the_migration_gauges(portal: Portal) -> None:
    city = portal.client.get("/api/net/kpis", headers=portal.as_role("platform_engineer")).json()[-1]
    text = portal.client.get("/metrics").text
    assert f'yunshu_dual_stack_ratio{{department="_city"}} {city["dual_stack_rate"]}' in text
    assert 'yunshu_cloud_adoption_ratio{department="GAJ"}' in text
    assert "yunshu_private_network_consolidation_ratio" in text
