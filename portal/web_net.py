"""Console pages of the network migration: KPIs per department, the waves ahead (with each system's dependencies),
jobs and a job's live events."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse
from sqlalchemy.orm import Session

from infra.jobs import JobRefused, list_jobs, show_job
from infra.migration_kpis import CITY, migration_kpis
from infra.waves import plan_waves
from portal.api_types import RowId
from portal.deps import DB_SESSION, Principal, require
from portal.web import render

router = APIRouter(include_in_schema=False)


@router.get("/net")
def net_page(request: Request, session: Session = DB_SESSION,
             principal: Principal = Depends(require("register.read", web=True))) -> HTMLResponse:
    scope = principal.departments(session)
    kpis = migration_kpis(session, scope)
    jobs = list_jobs(session, 20) if principal.can("jobs.read") else None
    return render(request, "net.html", {"me": principal, "nav": "net", "kpis": kpis[:-1], "total": kpis[-1],
                                        "city": CITY, "waves": plan_waves(session, 10, scope), "jobs": jobs})


@router.get("/net/jobs/{job_id}")
def job_page(job_id: RowId, request: Request, session: Session = DB_SESSION,
             principal: Principal = Depends(require("jobs.read", web=True))) -> HTMLResponse:
    """A job with its events; while it runs the page follows /api/jobs/{id}?after=… (see static/job.js)."""
    try:
        job = show_job(session, job_id)
    except JobRefused as exc:
        raise HTTPException(404, str(exc)) from None
    return render(request, "net_job.html", {"me": principal, "nav": "net", "job": job})
