"""Import (all-or-nothing, every invalid row named) and export of the register."""

from __future__ import annotations

import ipaddress
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.audit import AuditChain
from inventory.files import RawRow, dump_csv, dump_yaml, read_rows
from inventory.models import Department, Host, Network, Prefix, System
from inventory.records import (
    RECORD_TYPES,
    DepartmentRecord,
    HostRecord,
    NetworkRecord,
    PrefixRecord,
    SystemRecord,
)


@dataclass(frozen=True)
class RowError:
    """One reason a row was rejected."""

    line: int
    kind: str
    key: str | None
    field: str | None
    reason: str

    def __str__(self) -> str:
        where = f"line {self.line}: {self.kind}"
        if self.key:
            where += f" {self.key}"
        if self.field:
            where += f", field '{self.field}'"
        return f"{where}: {self.reason}"


class ImportRejected(Exception):
    """The file was rejected; nothing was written. ``errors`` lists every problem."""

    def __init__(self, errors: list[RowError]):
        self.errors = errors
        super().__init__(f"{len(errors)} problem(s); nothing was imported")


@dataclass
class ImportResult:
    created: Counter[str] = field(default_factory=Counter)
    updated: Counter[str] = field(default_factory=Counter)
    unchanged: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, dict[str, int]]:
        return {"created": dict(self.created), "updated": dict(self.updated), "unchanged": dict(self.unchanged)}


@dataclass
class _Parsed:
    line: int
    record: Any


KEY_FIELD = {"department": "code", "network": "code", "prefix": "cidr", "system": "id", "host": "name"}


def validate_rows(session: Session, rows: list[RawRow]) -> dict[str, list[_Parsed]]:
    """Validate every row and every cross-reference; raise ImportRejected naming all problems."""
    errors: list[RowError] = []
    parsed: dict[str, list[_Parsed]] = {k: [] for k in RECORD_TYPES}
    rejected: dict[str, set[str]] = {k: set() for k in RECORD_TYPES}  # invalid rows: no cascading errors
    for row in rows:
        model = RECORD_TYPES.get(row.kind)
        key = row.data.get(KEY_FIELD.get(row.kind, ""))
        if model is None:
            errors.append(RowError(row.line, row.kind, None, "kind",
                                   f"unknown record kind '{row.kind}' (expected {', '.join(RECORD_TYPES)})"))
            continue
        try:
            parsed[row.kind].append(_Parsed(row.line, model.model_validate(row.data)))
        except ValidationError as exc:
            rejected[row.kind].add(str(key))
            for err in exc.errors():
                loc = ".".join(str(p) for p in err["loc"]) or None
                msg = err["msg"].removeprefix("Value error, ")
                if err["type"] == "extra_forbidden":
                    msg = "unknown field"
                elif err["type"] == "missing" or (err["type"].endswith("_type") and err.get("input") is None):
                    msg = "required field is missing"
                errors.append(RowError(row.line_of(loc), row.kind, str(key) if key else None, loc, msg))
    raw_by_line = {(row.kind, row.line): row for row in rows}
    checks = [*_check_duplicates(parsed), *_check_references(session, parsed)]
    for e in checks:
        if _cascades(e, rejected):
            continue
        raw = raw_by_line.get((e.kind, e.line))
        errors.append(replace(e, line=raw.line_of(e.field)) if raw else e)
    if errors:
        raise ImportRejected(sorted(errors, key=lambda e: e.line))
    return parsed


def _cascades(error: RowError, rejected: dict[str, set[str]]) -> bool:
    """True for "unknown X" errors whose X is a row of the same file already reported as invalid."""
    target_kind = {"department": "department", "parent": "department", "system": "system", "network": "network",
                   "depends_on": "system"}
    kind = target_kind.get(error.field or "")
    if kind is None or not error.reason.startswith("unknown "):
        return False
    value = error.reason.split("'")[1] if "'" in error.reason else ""
    return value in rejected[kind]


def _check_duplicates(parsed: dict[str, list[_Parsed]]) -> list[RowError]:
    errors: list[RowError] = []
    checks = [("department", "code"), ("network", "code"), ("prefix", "cidr"), ("system", "id"),
              ("host", "name"), ("host", "ipv4"), ("host", "ipv6")]
    for kind, attr in checks:
        first: dict[str, int] = {}
        for p in parsed[kind]:
            value = getattr(p.record, attr)
            if value is None:
                continue
            if value in first:
                errors.append(RowError(p.line, kind, getattr(p.record, KEY_FIELD[kind]), attr,
                                       f"duplicate {attr} '{value}' (first at line {first[value]})"))
            else:
                first[value] = p.line
    return errors


def _check_references(session: Session, parsed: dict[str, list[_Parsed]]) -> list[RowError]:
    errors: list[RowError] = []
    dept_parent = {d.code: d.parent_code for d in session.scalars(select(Department))}
    dept_parent.update({p.record.code: p.record.parent for p in parsed["department"]})
    networks = set(session.scalars(select(Network.code))) | {p.record.code for p in parsed["network"]}
    stacks: dict[str, str] = {i: st for i, st in session.execute(select(System.id, System.network_stack))}
    stacks.update({p.record.id: p.record.network_stack for p in parsed["system"]})

    for p in parsed["department"]:
        d: DepartmentRecord = p.record
        if d.parent and d.parent not in dept_parent:
            errors.append(RowError(p.line, "department", d.code, "parent", f"unknown department '{d.parent}'"))
        elif _has_cycle(d.code, dept_parent):
            errors.append(RowError(p.line, "department", d.code, "parent", "parent chain loops back to itself"))
    for p in parsed["network"]:
        n: NetworkRecord = p.record
        if n.department and n.department not in dept_parent:
            errors.append(RowError(p.line, "network", n.code, "department",
                                   f"unknown department '{n.department}'"))
    for p in parsed["system"]:
        s: SystemRecord = p.record
        if s.department not in dept_parent:
            errors.append(RowError(p.line, "system", s.id, "department", f"unknown department '{s.department}'"))
        for needed in s.depends_on:
            if needed not in stacks:
                errors.append(RowError(p.line, "system", s.id, "depends_on", f"unknown system '{needed}' (neither "
                                       "in this file nor in the register)"))
    errors.extend(_check_prefixes(session, parsed["prefix"], networks))
    errors.extend(_check_hosts(session, parsed["host"], stacks))
    return errors


def _has_cycle(code: str, parents: dict[str, str | None]) -> bool:
    seen = {code}
    current = parents.get(code)
    while current:
        if current in seen:
            return True
        seen.add(current)
        current = parents.get(current)
    return False


def _check_prefixes(session: Session, prefixes: list[_Parsed], networks: set[str]) -> list[RowError]:
    errors: list[RowError] = []
    incoming = {p.record.cidr for p in prefixes}
    existing = [ipaddress.ip_network(c) for c in session.scalars(select(Prefix.cidr)) if c not in incoming]
    seen: list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, int]] = []
    for p in prefixes:
        r: PrefixRecord = p.record
        if r.network not in networks:
            errors.append(RowError(p.line, "prefix", r.cidr, "network", f"unknown network '{r.network}'"))
        net = ipaddress.ip_network(r.cidr)
        clash = next((str(o) for o in existing if o.version == net.version and o.overlaps(net)), None)
        clash = clash or next((f"{o} (line {ln})" for o, ln in seen if o.version == net.version and o.overlaps(net)),
                              None)
        if clash:
            errors.append(RowError(p.line, "prefix", r.cidr, "cidr", f"overlaps prefix {clash}"))
        seen.append((net, p.line))
    return errors


def _check_hosts(session: Session, hosts: list[_Parsed], stacks: dict[str, str]) -> list[RowError]:
    errors: list[RowError] = []
    owners: dict[str, str] = {}
    for name, v4, v6 in session.execute(select(Host.name, Host.ipv4, Host.ipv6)):
        for ip in (v4, v6):
            if ip:
                owners[ip] = name
    for p in hosts:
        h: HostRecord = p.record
        stack = stacks.get(h.system)
        if stack is None:
            errors.append(RowError(p.line, "host", h.name, "system", f"unknown system '{h.system}'"))
        else:
            if stack in ("ipv4", "dual") and h.ipv4 is None:
                errors.append(RowError(p.line, "host", h.name, "ipv4", f"system {h.system} is {stack}: "
                                       "an IPv4 address is required"))
            if stack in ("ipv6", "dual") and h.ipv6 is None:
                errors.append(RowError(p.line, "host", h.name, "ipv6", f"system {h.system} is {stack}: "
                                       "an IPv6 address is required"))
            if stack == "ipv6" and h.ipv4 is not None:
                errors.append(RowError(p.line, "host", h.name, "ipv4", f"system {h.system} is IPv6-only"))
            if stack == "ipv4" and h.ipv6 is not None:
                errors.append(RowError(p.line, "host", h.name, "ipv6", f"system {h.system} is IPv4-only"))
        for attr in ("ipv4", "ipv6"):
            ip = getattr(h, attr)
            if ip and owners.get(ip, h.name) != h.name:
                errors.append(RowError(p.line, "host", h.name, attr, f"address {ip} already belongs to "
                                       f"host '{owners[ip]}'"))
    return errors


# --- writing -------------------------------------------------------------------------------------------

def _department_values(r: DepartmentRecord) -> dict[str, Any]:
    return {"name": r.name, "name_en": r.name_en, "parent_code": r.parent}


def _network_values(r: NetworkRecord) -> dict[str, Any]:
    return {"name": r.name, "zone": r.zone, "department_code": r.department}


def _prefix_values(r: PrefixRecord) -> dict[str, Any]:
    return {"network_code": r.network, "purpose": r.purpose, "family": ipaddress.ip_network(r.cidr).version}


def _system_values(r: SystemRecord) -> dict[str, Any]:
    return {
        "name": r.name, "department_code": r.department, "owner": r.owner, "mlps_level": r.mlps_level,
        "grading_info_object": r.grading.business_info.object,
        "grading_info_degree": r.grading.business_info.degree,
        "grading_service_object": r.grading.system_service.object,
        "grading_service_degree": r.grading.system_service.degree,
        "data_class": r.data_class, "public_data_level": r.public_data_level, "hosting": r.hosting,
        "network_stack": r.network_stack, "network_zone": r.network_zone, "status": r.status,
        "last_activity": r.last_activity,
    }


def _host_values(r: HostRecord) -> dict[str, Any]:
    return {"system_id": r.system, "ipv4": r.ipv4, "ipv6": r.ipv6, "os": r.os, "role": r.role}


WRITERS = [  # order respects foreign keys
    ("department", Department, "code", _department_values),
    ("network", Network, "code", _network_values),
    ("prefix", Prefix, "cidr", _prefix_values),
    ("system", System, "id", _system_values),
    ("host", Host, "name", _host_values),
]


def _same(old: Any, new: Any) -> bool:
    if isinstance(old, datetime) and isinstance(new, datetime):
        return _utc_naive(old) == _utc_naive(new)
    return old == new


def _utc_naive(ts: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    return ts.astimezone(UTC).replace(tzinfo=None) if ts.tzinfo else ts


def _parents_first(items: list[_Parsed]) -> list[_Parsed]:
    by_code = {p.record.code: p for p in items}
    ordered: list[_Parsed] = []
    placed: set[str] = set()

    def place(p: _Parsed) -> None:
        if p.record.code in placed:
            return
        parent = by_code.get(p.record.parent or "")
        if parent is not None:
            place(parent)
        placed.add(p.record.code)
        ordered.append(p)

    for p in items:
        place(p)
    return ordered


def apply_rows(session: Session, parsed: dict[str, list[_Parsed]], audit: AuditChain, actor: str) -> ImportResult:
    """Upsert validated records inside the caller's transaction, one audit entry per change."""
    result = ImportResult()
    parsed = {**parsed, "department": _parents_first(parsed["department"])}
    for kind, model, key_attr, values_of in WRITERS:
        done: list[tuple[str, str, dict[str, Any]]] = []  # (key, action, changes) in file order
        for p in parsed[kind]:
            key = getattr(p.record, KEY_FIELD[kind])
            values = values_of(p.record)
            obj = session.get(model, key)
            if obj is None:
                session.add(model(**{key_attr: key}, **values))
                done.append((str(key), "create", _jsonable(values)))
            else:
                changes = {k: _jsonable({"v": v})["v"] for k, v in values.items()
                           if not _same(getattr(obj, k), v)}
                for k in changes:
                    setattr(obj, k, values[k])
                done.append((str(key), "update", changes))
            session.flush()
        if kind == "system":  # every system of the file exists now: dependencies may point anywhere in it
            for p, (_key, action, changes) in zip(parsed[kind], done, strict=True):
                _apply_dependencies(session, p.record, action, changes)
        for key, action, changes in done:
            if not changes:
                result.unchanged[kind] += 1
                continue
            (result.created if action == "create" else result.updated)[kind] += 1
            audit.append(session, actor=actor, action=f"inventory.{kind}.{action}", object_type=kind,
                         object_id=key, payload=changes)
    return result


def _apply_dependencies(session: Session, record: SystemRecord, action: str, changes: dict[str, Any]) -> None:
    """Replace a system's dependency set with the record's; note the new set in ``changes`` if it differs."""
    system = session.get_one(System, record.id)
    wanted = sorted(record.depends_on)
    current = sorted(d.id for d in system.depends_on)
    if current != wanted:
        system.depends_on = [session.get_one(System, i) for i in wanted]
        session.flush()
    if action == "create" or current != wanted:
        changes["depends_on"] = wanted


def _jsonable(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in values.items()}


def import_file(session: Session, path: Path, audit: AuditChain, actor: str, fmt: str | None = None) -> ImportResult:
    """Validate and import a YAML or CSV register file; on any problem nothing is written."""
    rows = read_rows(path, fmt)
    parsed = validate_rows(session, rows)
    return apply_rows(session, parsed, audit, actor)


# --- export ----------------------------------------------------------------------------------------------

def _department_record(d: Department) -> dict[str, Any]:
    return {"code": d.code, "name": d.name, "name_en": d.name_en, "parent": d.parent_code}


def system_record(s: System) -> dict[str, Any]:
    """A system as a plain record (the shape of the import files and the API)."""
    return {
        "id": s.id, "name": s.name, "department": s.department_code, "owner": s.owner,
        "mlps_level": s.mlps_level,
        "grading": {
            "business_info": {"object": s.grading_info_object, "degree": s.grading_info_degree},
            "system_service": {"object": s.grading_service_object, "degree": s.grading_service_degree},
        },
        "data_class": s.data_class, "public_data_level": s.public_data_level, "hosting": s.hosting,
        "network_stack": s.network_stack, "network_zone": s.network_zone, "status": s.status,
        "last_activity": _iso(s.last_activity),
        "depends_on": sorted(d.id for d in s.depends_on),
    }


def host_record(h: Host) -> dict[str, Any]:
    return {"name": h.name, "system": h.system_id, "ipv4": h.ipv4, "ipv6": h.ipv6, "os": h.os, "role": h.role}


def _iso(ts: datetime | None) -> str | None:
    """UTC with a Z (whatever the database session's time zone), keeping sub-second precision."""
    if ts is None:
        return None
    utc = _utc_naive(ts)
    return utc.strftime("%Y-%m-%dT%H:%M:%S") + (f".{utc.microsecond:06d}" if utc.microsecond else "") + "Z"


def _ordered_departments(session: Session) -> list[Department]:
    items = list(session.scalars(select(Department).order_by(Department.code)))
    done: set[str] = set()
    out: list[Department] = []
    pending = items
    while pending:
        rest = [d for d in pending if d.parent_code and d.parent_code not in done]
        for d in pending:
            if d not in rest:
                out.append(d)
                done.add(d.code)
        if len(rest) == len(pending):  # broken parents: emit as is rather than loop
            out.extend(rest)
            break
        pending = rest
    return out


def export_document(session: Session) -> dict[str, list[dict[str, Any]]]:
    """The whole register in the import file's shape."""
    networks = []
    for n in session.scalars(select(Network).order_by(Network.code)):
        networks.append({
            "code": n.code, "name": n.name, "zone": n.zone, "department": n.department_code,
            "prefixes": [{"cidr": p.cidr, "purpose": p.purpose} for p in n.prefixes],
        })
    return {
        "departments": [_department_record(d) for d in _ordered_departments(session)],
        "networks": networks,
        "systems": [system_record(s) for s in session.scalars(select(System).order_by(System.id))],
        "hosts": [host_record(h) for h in session.scalars(select(Host).order_by(Host.name))],
    }


def export_text(session: Session, fmt: str) -> str:
    """Export as ``yaml`` or ``csv`` text that ``import_file`` reads back unchanged."""
    doc = export_document(session)
    if fmt == "yaml":
        return dump_yaml(doc)
    if fmt != "csv":
        raise ValueError(f"unknown export format '{fmt}' (expected yaml or csv)")
    rows: list[tuple[str, dict[str, Any]]] = [("department", d) for d in doc["departments"]]
    for n in doc["networks"]:
        rows.append(("network", {k: v for k, v in n.items() if k != "prefixes"}))
        rows.extend(("prefix", {**p, "network": n["code"]}) for p in n["prefixes"])
    rows += [("system", s) for s in doc["systems"]] + [("host", h) for h in doc["hosts"]]
    return dump_csv(rows)
