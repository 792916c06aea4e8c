"""System dependencies in the register: import (forward references, cycles, duplicates), audit, exact YAML and CSV
round trips, rejected references naming row and id with nothing stored, the migration, and the API's system detail."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import delete, func, insert, inspect, select
from sqlalchemy.exc import IntegrityError

from core.audit import AuditEntry
from core.db import alembic_config
from core.runtime import Runtime
from inventory.files import parse_csv
from inventory.models import System, system_dependencies
from inventory.register import ImportRejected, RowError, export_text, import_file
from tests.conftest import Portal, load_sample, make_runtime


def _system(sid: str, depends_on: list[str] | None = None) -> str:
    deps = "" if depends_on is None else "    depends_on:\n" + "".join(f"      - {d}\n" for d in depends_on)
    return f"""  - id: {sid}
    name: 测试系统{sid[-3:]}
    department: TEST
    owner: 张三
    mlps_level: 2
    grading:
      business_info: {{object: citizen_rights, degree: serious}}
      system_service: {{object: public_order, degree: general}}
    data_class: general
    public_data_level: L2
    hosting: local_idc
    network_stack: ipv4
    network_zone: egov_extranet
    status: live
{deps}"""


def _file(*systems: str) -> str:
    return "departments:\n  - {code: TEST, name: 市测试局, parent: null}\nsystems:\n" + "".join(systems)


BASE = _file(
    _system("SYS-TEST-001", ["SYS-TEST-003", "SYS-TEST-002", "SYS-TEST-003"]),  # forward references, a duplicate
    _system("SYS-TEST-002", ["SYS-TEST-001"]),  # a cycle with 001: allowed in the register
    _system("SYS-TEST-003"),
)


def _import(rt: Runtime, path: Path, text: str):  # type: ignore[no-untyped-def]
    path.write_text(text, encoding="utf-8")
    with rt.transaction() as s:
        return import_file(s, path, rt.audit, "tester")


def _dependencies(rt: Runtime) -> set[tuple[str, str]]:
    with rt.sessions() as s:
        return set(s.execute(select(system_dependencies.c.system_id, system_dependencies.c.depends_on_id)).all())


def _counts(rt: Runtime) -> tuple[int, int, int]:
    with rt.sessions() as s:
        return (s.scalar(select(func.count()).select_from(System)) or 0,
                s.scalar(select(func.count()).select_from(system_dependencies)) or 0,
                s.scalar(select(func.count()).select_from(AuditEntry)) or 0)


def test_import_stores_dependencies_and_audits_changes(rt: Runtime, tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    result = _import(rt, path, BASE)
    assert result.created["system"] == 3
    assert _dependencies(rt) == {("SYS-TEST-001", "SYS-TEST-002"), ("SYS-TEST-001", "SYS-TEST-003"),
                                 ("SYS-TEST-002", "SYS-TEST-001")}
    with rt.sessions() as s:
        one = s.get_one(System, "SYS-TEST-001")
        assert [d.id for d in one.depends_on] == ["SYS-TEST-002", "SYS-TEST-003"]
        assert [d.id for d in s.get_one(System, "SYS-TEST-003").dependents] == ["SYS-TEST-001"]
        created = s.scalars(select(AuditEntry).where(AuditEntry.object_id == "SYS-TEST-001")).one()
        assert json.loads(created.payload)["depends_on"] == ["SYS-TEST-002", "SYS-TEST-003"]
    again = _import(rt, path, BASE)
    assert not again.created and not again.updated and again.unchanged["system"] == 3

    changed = BASE.replace("      - SYS-TEST-003\n      - SYS-TEST-002\n      - SYS-TEST-003\n",
                           "      - SYS-TEST-002\n")
    assert dict(_import(rt, path, changed).updated) == {"system": 1}
    assert _dependencies(rt) == {("SYS-TEST-001", "SYS-TEST-002"), ("SYS-TEST-002", "SYS-TEST-001")}
    with rt.sessions() as s:
        last = s.scalars(select(AuditEntry).order_by(AuditEntry.seq.desc())).first()
        assert (last.action, last.object_id) == ("inventory.system.update", "SYS-TEST-001")
        assert json.loads(last.payload) == {"depends_on": ["SYS-TEST-002"]}
    # a record without depends_on has none: the cycle is gone, recorded with the status change
    cleared = _file(_system("SYS-TEST-001", ["SYS-TEST-002"]),
                    _system("SYS-TEST-002").replace("status: live", "status: migrating"), _system("SYS-TEST-003"))
    assert dict(_import(rt, path, cleared).updated) == {"system": 1}
    assert _dependencies(rt) == {("SYS-TEST-001", "SYS-TEST-002")}
    with rt.sessions() as s:
        last = s.scalars(select(AuditEntry).order_by(AuditEntry.seq.desc())).first()
        assert last.object_id == "SYS-TEST-002"
        assert json.loads(last.payload) == {"status": "migrating", "depends_on": []}
        assert rt.audit.verify(s).ok


def test_dependency_on_a_system_already_in_the_register(rt: Runtime, tmp_path: Path) -> None:
    _import(rt, tmp_path / "a.yaml", BASE)
    assert _import(rt, tmp_path / "b.yaml", _file(_system("SYS-TEST-004", ["SYS-TEST-003"]))).created["system"] == 1
    assert ("SYS-TEST-004", "SYS-TEST-003") in _dependencies(rt)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("fmt", ["yaml", "csv"])
def test_export_round_trip_is_exact(rt: Runtime, tmp_path: Path, fmt: str) -> None:
    """The sample city plus a cycle: export, import into an empty register, export again: the same text."""
    load_sample(rt)
    _import(rt, tmp_path / "extra.yaml", BASE)
    with rt.sessions() as s:
        text = export_text(s, fmt)
    if fmt == "csv":
        rows = {r["id"]: r for r in csv.DictReader(io.StringIO(text)) if r["kind"] == "system"}
        assert rows["SYS-TEST-001"]["depends_on"] == "SYS-TEST-002;SYS-TEST-003"
        assert rows["SYS-TEST-003"]["depends_on"] == ""
    else:
        assert "  depends_on:\n  - SYS-TEST-002\n  - SYS-TEST-003\n" in text
    path = tmp_path / f"export.{fmt}"
    path.write_text(text, encoding="utf-8")
    again = _import(rt, path, text)
    assert not again.created and not again.updated
    other = make_runtime(tmp_path / "other")
    try:
        _import(other, path, text)
        assert _dependencies(other) == _dependencies(rt) and len(_dependencies(rt)) > 10
        with other.sessions() as s:
            assert export_text(s, fmt) == text
    finally:
        other.close()


def test_csv_cell_splits_on_semicolons() -> None:
    header = "kind,id,depends_on\n"
    rows = parse_csv(header + 'system,SYS-A-001," SYS-B-001 ;SYS-C-001;; "\nsystem,SYS-A-002,\n')
    assert rows[0].data["depends_on"] == ["SYS-B-001", "SYS-C-001"]
    assert "depends_on" not in rows[1].data  # empty: the record's default, no dependencies


CSV_HEADER = ("id,name,department,owner,mlps_level,grading_info_object,grading_info_degree,grading_service_object,"
              "grading_service_degree,data_class,public_data_level,hosting,network_stack,network_zone,status,"
              "last_activity,depends_on")


def _csv_row(sid: str, depends_on: str) -> str:
    return (f"{sid},新系统,TEST,李四,2,citizen_rights,serious,public_order,general,general,L2,local_idc,ipv4,"
            f"egov_extranet,live,,{depends_on}")


@pytest.mark.parametrize(("fmt", "text", "line", "key", "reason"), [
    ("yaml", BASE.replace("      - SYS-TEST-002\n", "      - SYS-NOPE-009\n", 1), 18, "SYS-TEST-001",
     "unknown system 'SYS-NOPE-009'"),
    ("yaml", BASE.replace("      - SYS-TEST-001\n", "      - SYS-TEST-002\n", 1), 36, "SYS-TEST-002",
     "system SYS-TEST-002 cannot depend on itself"),
    ("csv", "\n".join([CSV_HEADER, _csv_row("SYS-TEST-101", ""), _csv_row("SYS-TEST-102", "SYS-TEST-101;SYS-X-404")]),
     3, "SYS-TEST-102", "unknown system 'SYS-X-404'"),
    ("csv", "\n".join([CSV_HEADER, _csv_row("SYS-TEST-101", "SYS-TEST-101")]), 2, "SYS-TEST-101",
     "cannot depend on itself"),
], ids=["yaml-unknown", "yaml-self", "csv-unknown", "csv-self"])
def test_bad_references_are_rejected_and_nothing_is_stored(rt: Runtime, tmp_path: Path, fmt: str, text: str,
                                                           line: int, key: str, reason: str) -> None:
    _import(rt, tmp_path / "dept.yaml", "departments:\n  - {code: TEST, name: 市测试局, parent: null}\n")
    before = _counts(rt)
    with pytest.raises(ImportRejected) as info:
        _import(rt, tmp_path / f"bad.{fmt}", text)
    assert [(e.line, e.kind, e.key, e.field) for e in info.value.errors] == [(line, "system", key, "depends_on")]
    error: RowError = info.value.errors[0]
    assert reason in error.reason and str(error).startswith(f"line {line}: system {key}, field 'depends_on'")
    assert _counts(rt) == before  # not the valid systems, not a dependency, not an audit entry


def test_dependency_on_an_invalid_row_reports_only_that_row(sqlite_rt: Runtime, tmp_path: Path) -> None:
    text = BASE.replace("    mlps_level: 2\n", "    mlps_level: 9\n", 3)  # all three rows invalid
    text = text.replace("    mlps_level: 9\n", "    mlps_level: 2\n", 2)  # only SYS-TEST-003 remains invalid
    with pytest.raises(ImportRejected) as info:
        _import(sqlite_rt, tmp_path / "r.yaml", text)
    assert [(e.key, e.field) for e in info.value.errors] == [("SYS-TEST-003", "mlps_level")]


def _alembic(rt: Runtime, action: str, revision: str) -> None:
    cfg = alembic_config(rt.engine.url.render_as_string(hide_password=False))
    with rt.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        getattr(command, action)(cfg, revision)


def test_migration_0011_constraints_and_downgrade(rt: Runtime, tmp_path: Path) -> None:
    """SQLite and PostgreSQL: composite key, no self-dependency, ON DELETE CASCADE; 0011 goes down and up again."""
    _import(rt, tmp_path / "r.yaml", BASE)
    for system_id, depends_on_id in [("SYS-TEST-003", "SYS-TEST-003"),  # itself
                                     ("SYS-TEST-001", "SYS-TEST-002"),  # already there
                                     ("SYS-TEST-003", "SYS-NONE-1")]:  # no such system
        with pytest.raises(IntegrityError), rt.engine.begin() as conn:
            conn.execute(insert(system_dependencies).values(system_id=system_id, depends_on_id=depends_on_id))
    with rt.engine.begin() as conn:
        conn.execute(delete(System.__table__).where(System.id == "SYS-TEST-002"))
    assert _dependencies(rt) == {("SYS-TEST-001", "SYS-TEST-003")}  # both rows naming 002 went with it

    _alembic(rt, "downgrade", "0010")
    with rt.engine.connect() as conn:
        assert "system_dependencies" not in inspect(conn).get_table_names()
        assert "systems" in inspect(conn).get_table_names()
    _alembic(rt, "upgrade", "head")
    with rt.engine.connect() as conn:
        tables = inspect(conn)
        assert "system_dependencies" in tables.get_table_names()
        assert tables.get_pk_constraint("system_dependencies")["constrained_columns"] == ["system_id",
                                                                                          "depends_on_id"]
    assert _dependencies(rt) == set()


def test_api_system_detail_shows_both_directions(portal: Portal) -> None:
    headers = portal.as_role("platform_engineer")
    one = portal.client.get("/api/systems/SYS-XZSPJ-001", headers=headers).json()
    assert one["depends_on"] == ["SYS-DSJ-005", "SYS-DSJ-006", "SYS-XZSPJ-004", "SYS-XZSPJ-005"]
    assert one["dependents"] == ["SYS-ZFB-005", "SYS-ZWFWZX-003"]
    idp = portal.client.get("/api/systems/SYS-DSJ-006", headers=headers).json()
    assert idp["depends_on"] == [] and {"SYS-XZSPJ-001", "SYS-GAJ-008", "SYS-RSJ-002"} <= set(idp["dependents"])
    listed = portal.client.get("/api/systems?department=RSJ", headers=headers).json()["items"]
    by_id = {s["id"]: s["depends_on"] for s in listed}
    assert by_id["SYS-RSJ-001"] == ["SYS-RSJ-005"] and by_id["SYS-RSJ-005"] == ["SYS-RSJ-001"]  # the sample's cycle


def test_system_page_shows_both_directions(portal: Portal) -> None:
    from tests.tickets.test_web import logged_in

    browser = logged_in(portal, "platform-engineer")
    page = browser.get("/systems/SYS-XZSPJ-001").text
    needs = page.split('id="detail-depends-on">')[1].split("</dd>")[0]
    assert [f"SYS-{x}" for x in ("DSJ-005", "DSJ-006", "XZSPJ-004", "XZSPJ-005")] == \
        [part.split('"')[0] for part in needs.split('href="/systems/')[1:]]
    needed_by = page.split('id="detail-dependents">')[1].split("</dd>")[0]
    assert 'href="/systems/SYS-ZFB-005"' in needed_by and 'href="/systems/SYS-ZWFWZX-003"' in needed_by
    lone = browser.get("/systems/SYS-DSJ-006").text.split('id="detail-depends-on">')[1].split("</dd>")[0]
    assert lone == "—"
