"""API of the network migration: KPIs (上云率 / 双栈率 / 专网整合率), waves, and automation jobs with their events."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query
from sqlalchemy.orm import Session

from infra.jobs import JobRefused, list_jobs, show_job
from infra.migration_kpis import migration_kpis
from infra.waves import plan_waves
from portal.api_types import Offset, RowId
from portal.deps import DB_SESSION, Principal, require

router = APIRouter(prefix="/api", tags=["network"])


@router.get("/net/kpis")
def kpis(session: Session = DB_SESSION,
         principal: Principal = Depends(require("register.read"))) -> list[dict[str, Any]]:
    """Per department (the caller's scope) and the scope total (``_city``)."""
    return [k.as_dict() for k in migration_kpis(session, principal.departments(session))]


@router.get("/net/waves")
def waves(size: int = Query(10, ge=1, le=500), session: Session = DB_SESSION,
          principal: Principal = Depends(require("register.read"))) -> list[dict[str, Any]]:
    """The migration waves still ahead, lower 等保 levels first, no system before the systems it depends on."""
    return [w.as_dict() for w in plan_waves(session, size, principal.departments(session))]


@router.get("/jobs")
def jobs(limit: int = Query(50, ge=1, le=500), status: str | None = None, session: Session = DB_SESSION,
         _: Principal = Depends(require("jobs.read"))) -> list[dict[str, Any]]:
    return list_jobs(session, limit, status)


@router.get("/jobs/{job_id}")
def job(job_id: RowId, after: Offset = 0, session: Session = DB_SESSION,
        _: Principal = Depends(require("jobs.read"))) -> dict[str, Any]:
    """One job; ``after``: only events with a higher sequence number (for following a running job)."""
    try:
        return show_job(session, job_id, after=after)
    except JobRefused as exc:
        raise HTTPException(404, str(exc)) from None
