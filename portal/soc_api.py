"""SOC routes: HTTP bulk ingest, event search, health."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from core.runtime import Runtime
from portal.deps import DB_SESSION, Principal, require, runtime
from soc.alerts.situation import situation
from soc.detect.retro import hunt, rule_from_text
from soc.ecs import parse_query_time
from soc.service import SocServices
from soc.store.aggregate import aggregate
from soc.store.base import HISTOGRAM_INTERVALS, SearchQuery, split_where

router = APIRouter(prefix="/api/soc", tags=["soc"])


def services(request: Request) -> SocServices:
    soc = getattr(request.app.state, "soc", None)
    if soc is None:
        raise HTTPException(503, "SOC services are not running / 安全运营服务未启动")
    return soc


MAX_RECORDS_PER_REQUEST = 100_000  # bounds the memory one request takes (10 MiB of "1\n" would be 5M records)


class TooManyRecords(ValueError):
    """A body holding more records than MAX_RECORDS_PER_REQUEST."""


def split_records(body: bytes, max_records: int = MAX_RECORDS_PER_REQUEST) -> list[bytes]:
    """A JSON array becomes one record per element; anything else is NDJSON (one record per line). More than
    ``max_records`` records: TooManyRecords, before they are copied out."""
    text = body.lstrip()
    if text.startswith(b"["):
        try:
            items = json.loads(text)
        except (ValueError, RecursionError):  # RecursionError: "[[[[…" nested too deeply
            items = None
        if isinstance(items, list):
            if len(items) > max_records:
                raise TooManyRecords(f"{len(items)} records in one request; at most {max_records}")
            # a lone surrogate ("\ud800" unpaired) can only sit in a JSON string: write it back as that escape
            return [json.dumps(item, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "backslashreplace")
                    for item in items]
    # newlines bound the records from above (blank lines are none); only past the limit are they counted exactly,
    # line by line without a list of them all
    if body.count(b"\n") >= max_records:
        lines = sum(1 for line in io.BytesIO(body) if line.strip())
        if lines > max_records:
            raise TooManyRecords(f"{lines} records in one request; at most {max_records}")
    return [line.rstrip(b"\r") for line in body.split(b"\n") if line.strip()]


@router.post("/ingest", status_code=202)
async def ingest(request: Request, rt: Runtime = Depends(runtime), session: Any = DB_SESSION,
                 principal: Principal = Depends(require("soc.ingest"))) -> JSONResponse:
    """Bulk ingest (NDJSON or a JSON array). Records are durable in the spool when this answers 202;
    records that are not valid JSON events end in the dead-letter store, never silently dropped.

    Neither the upload nor the spool's fsync holds anything else up: the request's database transaction (the
    caller's authentication; on SQLite the one write lock of the control plane) is committed before the body is
    read, and the fsync runs in a worker thread, so the event loop goes on serving other requests meanwhile.
    """
    await run_in_threadpool(session.commit)  # authenticated: the rest needs no database
    limit = rt.settings.soc.http_max_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"body larger than {limit} bytes / 请求体过大")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise HTTPException(413, f"body larger than {limit} bytes / 请求体过大")
    try:
        records = split_records(bytes(body))
    except TooManyRecords as exc:
        raise HTTPException(413, f"{exc}: split the upload / 单次请求记录过多，请分批上传") from None
    if records:
        await run_in_threadpool(services(request).accept, f"http:{principal.name}", "json", records)
    return JSONResponse({"accepted": len(records)}, status_code=202)


def _time(value: str | None) -> datetime | None:
    try:
        return parse_query_time(value)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None


def build_query(principal: Principal, session: Any, q: str | None, start: str | None, end: str | None,
                where: list[str], limit: int) -> SearchQuery:
    """A SearchQuery from request parameters, always limited to the caller's departments."""
    try:
        fields, cidr = split_where(where)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    return SearchQuery(start=_time(start), end=_time(end), text=q or None, where=fields, cidr=cidr,
                       departments=principal.departments(session), limit=limit)


@router.get("/events")
def events(request: Request, session: Any = DB_SESSION, principal: Principal = Depends(require("soc.read")),
           q: str | None = None, start: str | None = Query(None, alias="from"),
           end: str | None = Query(None, alias="to"), where: list[str] = Query([]),
           limit: int = Query(100, ge=1, le=1000)) -> dict[str, Any]:
    """Search events (newest first); a department user only ever sees its own departments' events."""
    query = build_query(principal, session, q, start, end, where, limit)
    try:
        result = services(request).soc.store.search(query)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    return {"total": result.total, "items": [{"_id": i, **e} for i, e in result.hits]}


@router.get("/aggregations")
def aggregations(request: Request, session: Any = DB_SESSION, principal: Principal = Depends(require("soc.read")),
                 q: str | None = None, start: str | None = Query(None, alias="from"),
                 end: str | None = Query(None, alias="to"), where: list[str] = Query([]),
                 terms: list[str] = Query([]), interval: str | None = None,
                 size: int = Query(10, ge=1, le=100)) -> dict[str, Any]:
    """Counts over the matching events: the total, the top ``size`` values of each ``terms`` field and, with
    ``interval`` (one of 1m 5m 15m 1h 6h 1d), a date histogram on the Asia/Shanghai clock."""
    if interval is not None and interval not in HISTOGRAM_INTERVALS:
        raise HTTPException(422, f"interval must be one of {', '.join(HISTOGRAM_INTERVALS)}")
    query = build_query(principal, session, q, start, end, where, 0)
    try:
        return aggregate(services(request).soc.store, query, terms, interval, size)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None


class HuntIn(BaseModel):
    rule_id: str | None = Field(None, description="id or name of a loaded rule")
    rule: str | None = Field(None, max_length=200_000, description="a Sigma rule as YAML (tried before enabling)")
    pipeline: Literal["none", "ecs"] = "none"
    start: str | None = Field(None, alias="from")
    end: str | None = Field(None, alias="to")
    where: list[str] = []
    limit: int = Field(100, ge=1, le=1000)


@router.post("/hunt")
def hunt_view(body: HuntIn, request: Request, session: Any = DB_SESSION,
              principal: Principal = Depends(require("soc.hunt"))) -> dict[str, Any]:
    """Retro-hunt: the stored events a rule matches (SQL on the embedded store, Lucene on Elasticsearch)."""
    soc = services(request)
    if (body.rule_id is None) == (body.rule is None):
        raise HTTPException(422, "give rule_id or rule, not both / 请指定规则编号或规则内容之一")
    try:
        if body.rule is not None:
            rule = rule_from_text(body.rule, body.pipeline)
        else:
            rules = soc.soc.detection.detector.rules if soc.soc.detection else []
            rule = next((r for r in rules if body.rule_id in (r.id, r.name)), None)
            if rule is None:
                raise HTTPException(404, f"no loaded rule {body.rule_id!r} / 规则不存在")
        query = build_query(principal, session, None, body.start, body.end, body.where, body.limit)
        result = hunt(soc.soc.store, rule, query)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    return {"rule": {"id": rule.id, "title": rule.title, "level": rule.level}, "total": result.total,
            "items": [{"_id": i, **e} for i, e in result.hits]}


@router.get("/situation")
def situation_view(request: Request, session: Any = DB_SESSION, principal: Principal = Depends(require("soc.read")),
                   hours: int = Query(24, ge=1, le=24 * 90)) -> dict[str, Any]:
    """态势感知: events and alerts over time, severities, top sources, systems and departments, ATT&CK tactics,
    IPv4/IPv6 share, department risk and alerts past their SLA — within the caller's departments."""
    return situation(session, services(request).soc.store, principal.departments(session), hours)


@router.get("/health")
def health(request: Request, session: Any = DB_SESSION,
           principal: Principal = Depends(require("soc.read"))) -> dict[str, Any]:
    """Ingest health: spool backlog, the embedded store's side index lag (full text and key tables; rows; None on
    Elasticsearch), detection (how it runs, its lag, the detection process), dead letters, events
    in the last 24 hours by dataset and the ingest counters since the service started, by source (the values
    /metrics exports)."""
    soc = services(request)
    day = SearchQuery(start=datetime.now(UTC) - timedelta(hours=24), departments=principal.departments(session))
    text_lag = getattr(soc.soc.store, "text_index_lag", None)  # the embedded store's side index
    return {
        "store": type(soc.soc.store).__name__,
        "spool_backlog_bytes": soc.spool.backlog_bytes(),
        "text_index_lag_rows": None if text_lag is None else text_lag(),
        "detection": soc.detection_health(),
        "dead_letters": soc.soc.deadletters.count(),
        "events_24h": soc.soc.store.count(day),
        "datasets_24h": dict(soc.soc.store.terms("event.dataset", day, 20)),
        "retention_days": soc.rt.settings.soc.retention_days,
        "ingest": soc.metrics.ingest_totals(),
    }
