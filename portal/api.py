"""REST API under /api (OpenAPI at /docs). Every route states the permission it needs."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, File, HTTPException, Query, UploadFile
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.audit import AuditEntry, entry_payload
from core.runtime import Runtime
from inventory.ansible_inventory import build_inventory
from inventory.files import FileFormatError, detect_format
from inventory.models import Department, System
from inventory.queries import SystemFilter, list_departments, list_hosts, list_systems, normalise_filter
from inventory.register import ImportRejected, export_text, host_record, import_file, system_record
from portal.api_types import RowId
from portal.deps import DB_SESSION, Principal, require, runtime
from portal.models import ApiToken, User
from portal.security import create_token, create_user

router = APIRouter(prefix="/api")

def _visible(principal: Principal, session: Session, department: str) -> bool:
    scope = principal.departments(session)
    return scope is None or department in scope


@router.get("/me", tags=["auth"])
def me(principal: Principal = Depends(require("tokens.own"))) -> dict[str, Any]:
    """The caller: user name, role and department."""
    u = principal.user
    return {"username": u.username, "display_name": u.display_name, "role": u.role,
            "department": u.department_code, "via": principal.via}


@router.get("/departments", tags=["register"])
def departments(session: Session = DB_SESSION,
                principal: Principal = Depends(require("register.read"))) -> list[dict[str, Any]]:
    """Departments visible to the caller, with their number of systems."""
    return [{"code": d.code, "name": d.name, "name_en": d.name_en, "parent": d.parent_code, "systems": n}
            for d, n in list_departments(session, principal.departments(session))]


@router.get("/departments/{code}", tags=["register"])
def department(code: str, session: Session = DB_SESSION,
               principal: Principal = Depends(require("register.read"))) -> dict[str, Any]:
    d = session.get(Department, code)
    if d is None or not _visible(principal, session, code):
        raise HTTPException(404, f"department '{code}' not found")
    return {"code": d.code, "name": d.name, "name_en": d.name_en, "parent": d.parent_code,
            "systems": [s.id for s in d.systems]}


@router.get("/systems", tags=["register"])
def systems(
    session: Session = DB_SESSION,
    principal: Principal = Depends(require("register.read")),
    department: str | None = None,
    mlps_level: int | None = Query(None, ge=1, le=4),
    data_class: str | None = None,
    hosting: str | None = None,
    network_stack: str | None = None,
    network_zone: str | None = None,
    status: str | None = None,
    q: str | None = None,
    limit: int = Query(200, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=10_000_000),
) -> dict[str, Any]:
    """Systems filtered by department, 等保 level, data class, hosting, network and status."""
    f = SystemFilter(department, mlps_level, data_class, hosting, network_stack, network_zone, status, q,
                     principal.departments(session))
    try:
        normalise_filter(f)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    rows, total = list_systems(session, f, limit, offset)
    return {"total": total, "items": [system_record(s) for s in rows]}


@router.get("/systems/{system_id}", tags=["register"])
def system(system_id: str, session: Session = DB_SESSION,
           principal: Principal = Depends(require("register.read"))) -> dict[str, Any]:
    s = session.get(System, system_id)
    if s is None or not _visible(principal, session, s.department_code):
        raise HTTPException(404, f"system '{system_id}' not found")
    dependents = [d.id for d in s.dependents]  # who needs this system (depends_on is in the record)
    return {**system_record(s), "dependents": dependents, "hosts": [host_record(h) for h in s.hosts]}


@router.get("/hosts", tags=["register"])
def hosts(session: Session = DB_SESSION, principal: Principal = Depends(require("register.read")),
          system: str | None = None) -> list[dict[str, Any]]:
    return [host_record(h) for h in list_hosts(session, system, principal.departments(session))]


@router.get("/inventory/export", tags=["register"])
def export(format: str = Query("yaml", pattern="^(yaml|csv)$"), session: Session = DB_SESSION,
           principal: Principal = Depends(require("register.export"))) -> PlainTextResponse:
    """The whole register as YAML or CSV (the import format)."""
    media = "text/csv" if format == "csv" else "application/yaml"
    return PlainTextResponse(export_text(session, format), media_type=f"{media}; charset=utf-8")


@router.post("/inventory/import", tags=["register"])
def import_register(
    file: UploadFile = File(...),
    principal: Principal = Depends(require("register.import")),
    session: Session = DB_SESSION,
    rt: Runtime = Depends(runtime),
) -> JSONResponse:
    """Import a YAML or CSV register file, all or nothing; 422 lists every invalid row."""
    name = file.filename or "upload"
    try:
        fmt = detect_format(Path(name))
    except FileFormatError as exc:
        return JSONResponse({"detail": str(exc), "errors": []}, status_code=422)
    data = file.file.read(20 * 1024 * 1024 + 1)  # a plain def: the import runs in a worker thread
    if len(data) > 20 * 1024 * 1024:
        return JSONResponse({"detail": "file larger than 20 MiB", "errors": []}, status_code=413)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"import.{fmt}"
        path.write_bytes(data)
        try:
            with session.begin_nested():
                result = import_file(session, path, rt.audit, principal.name, fmt)
        except FileFormatError as exc:
            return JSONResponse({"detail": f"{name}: {str(exc).replace(path.name + ': ', '')}", "errors": []},
                                status_code=422)
        except ImportRejected as exc:
            return JSONResponse({"detail": f"{name}: {exc}", "errors": [e.__dict__ for e in exc.errors]},
                                status_code=422)
    return JSONResponse(result.as_dict())


@router.get("/inventory/ansible", tags=["register"])
def ansible(session: Session = DB_SESSION,
            principal: Principal = Depends(require("register.ansible"))) -> dict[str, Any]:
    """The register as an Ansible dynamic inventory."""
    return build_inventory(session)


@router.get("/audit", tags=["audit"])
def audit_entries(session: Session = DB_SESSION, principal: Principal = Depends(require("audit.read")),
                  after: int = Query(0, ge=0), limit: int = Query(100, ge=1, le=1000)) -> list[dict[str, Any]]:
    """Audit-chain entries after ``after`` (sequence), oldest first."""
    rows = session.scalars(select(AuditEntry).where(AuditEntry.seq > after).order_by(AuditEntry.seq).limit(limit))
    return [{"seq": e.seq, "ts": e.ts.isoformat(), "actor": e.actor, "action": e.action,
             "object": f"{e.object_type}:{e.object_id}", "payload": entry_payload(e), "hash": e.hash}
            for e in rows]


@router.get("/audit/verify", tags=["audit"])
def audit_verify(session: Session = DB_SESSION, rt: Runtime = Depends(runtime),
                 principal: Principal = Depends(require("audit.read"))) -> dict[str, Any]:
    """Recompute every hash and signature of the audit chain; names the first bad entry."""
    return rt.audit.verify(session).as_dict()


class NewUser(BaseModel):
    username: str = Field(max_length=64)
    role: str = Field(max_length=32)
    password: str = Field(max_length=256)
    display_name: str | None = Field(None, max_length=128)
    department: str | None = Field(None, max_length=16)


def _user_record(u: User) -> dict[str, Any]:
    return {"username": u.username, "display_name": u.display_name, "role": u.role,
            "department": u.department_code, "active": u.active,
            "locked_until": u.locked_until.isoformat() if u.locked_until else None}


@router.get("/users", tags=["users"])
def users(session: Session = DB_SESSION,
          principal: Principal = Depends(require("users.read"))) -> list[dict[str, Any]]:
    return [_user_record(u) for u in session.scalars(select(User).order_by(User.username))]


@router.post("/users", tags=["users"], status_code=201)
def add_user(body: NewUser, session: Session = DB_SESSION, rt: Runtime = Depends(runtime),
             principal: Principal = Depends(require("users.manage"))) -> dict[str, Any]:
    """Create a user (the password must meet the policy; the user changes it at first login)."""
    try:
        with session.begin_nested():
            user = create_user(session, rt.audit, rt.settings.portal, actor=principal.name,
                               username=body.username, role=body.role, password=body.password,
                               display_name=body.display_name, department=body.department,
                               must_change_password=True)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    return _user_record(user)


class NewToken(BaseModel):
    name: str = Field(min_length=1, max_length=64)
    expires_days: int = Field(365, ge=1, le=3650)


@router.get("/tokens", tags=["auth"])
def tokens(session: Session = DB_SESSION,
           principal: Principal = Depends(require("tokens.own"))) -> list[dict[str, Any]]:
    """The caller's own API tokens (never the secret itself)."""
    rows = session.scalars(select(ApiToken).where(ApiToken.user_id == principal.user.id).order_by(ApiToken.id))
    return [{"id": t.id, "name": t.name, "prefix": t.token_prefix, "created_at": t.created_at.isoformat(),
             "expires_at": t.expires_at.isoformat() if t.expires_at else None, "revoked": t.revoked}
            for t in rows]


@router.post("/tokens", tags=["auth"], status_code=201)
def new_token(body: NewToken, session: Session = DB_SESSION, rt: Runtime = Depends(runtime),
              principal: Principal = Depends(require("tokens.own"))) -> dict[str, Any]:
    """Create an API token for the caller; the token is shown in this response only."""
    token, raw = create_token(session, rt.audit, actor=principal.name, user=principal.user, name=body.name,
                              expires_days=body.expires_days)
    return {"id": token.id, "name": token.name, "token": raw}


@router.delete("/tokens/{token_id}", tags=["auth"])
def revoke_token(token_id: RowId, session: Session = DB_SESSION, rt: Runtime = Depends(runtime),
                 principal: Principal = Depends(require("tokens.own"))) -> dict[str, Any]:
    token = session.get(ApiToken, token_id)
    if token is None or (token.user_id != principal.user.id and not principal.can("users.manage")):
        raise HTTPException(404, f"token {token_id} not found")
    token.revoked = True
    rt.audit.append(session, actor=principal.name, action="token.revoke", object_type="api_token",
                    object_id=str(token_id))
    return {"id": token_id, "revoked": True}
