"""The register: sample city, all-or-nothing import with precise errors, export round trips, Ansible inventory."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import func, select

import infra.host_evidence  # noqa: F401 - the automation job and host evidence tables
import inventory.ipam  # noqa: F401 - and the IPAM table
import portal.compliance.models
import portal.models
import portal.tickets.models  # noqa: F401 - and the ticket tables
import soc.alerts.models  # the alert tables (soc.* imports also register them on the metadata)
import soc.drills.models  # noqa: F401 - and the drill tables
from core.audit import AuditEntry
from core.db import Base
from core.runtime import Runtime
from inventory.ansible_inventory import build_inventory
from inventory.files import FileFormatError
from inventory.models import Department, Host, Prefix, System
from inventory.register import ImportRejected, export_text, import_file
from tests.conftest import SAMPLE, load_sample, run_cli

GOOD_SYSTEM = """
departments:
  - {code: TEST, name: 市测试局, name_en: Test Bureau, parent: null}
systems:
  - id: SYS-TEST-001
    name: 测试系统
    department: TEST
    owner: 张三
    mlps_level: 2
    grading:
      business_info: {object: citizen_rights, degree: serious}
      system_service: {object: public_order, degree: general}
    data_class: general
    public_data_level: L2
    hosting: gov_cloud
    network_stack: dual
    network_zone: egov_extranet
    status: live
    last_activity: "2026-11-01T00:00:00Z"
hosts:
  - {name: test-app01, system: SYS-TEST-001, ipv4: 198.19.200.10, ipv6: "2001:db8:ffff::10", os: Debian 12, role: app}
"""


def _counts(rt: Runtime) -> tuple[int, int, int, int]:
    with rt.sessions() as s:
        return (s.scalar(select(func.count()).select_from(Department)) or 0,
                s.scalar(select(func.count()).select_from(System)) or 0,
                s.scalar(select(func.count()).select_from(Host)) or 0,
                s.scalar(select(func.count()).select_from(AuditEntry)) or 0)


def _import(rt: Runtime, path: Path):  # type: ignore[no-untyped-def]
    with rt.transaction() as s:
        return import_file(s, path, rt.audit, "tester")


def test_migrations_match_models(rt: Runtime) -> None:
    """The Alembic scripts create exactly the schema the models declare (no drift)."""
    with rt.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_sample_city_loads(rt: Runtime) -> None:
    load_sample(rt)
    depts, systems, hosts, audit = _counts(rt)
    assert depts >= 30 and systems >= 150 and hosts > systems
    assert audit >= depts + systems + hosts  # one audit entry per created record
    with rt.sessions() as s:
        names = set(s.scalars(select(Department.name)))
        assert {"市公安局", "市人社局", "市卫健委", "市大数据管理局", "市行政审批局"} <= names
        for column in (System.mlps_level, System.data_class, System.hosting, System.network_stack,
                       System.network_zone, System.status):
            assert len(set(s.scalars(select(column)))) >= 2, column
        assert rt.audit.verify(s).ok


def test_reimport_changes_nothing_and_update_is_audited(rt: Runtime, tmp_path: Path) -> None:
    load_sample(rt)
    before = _counts(rt)
    again = _import(rt, SAMPLE)
    assert not again.created and not again.updated and sum(again.unchanged.values()) > 0
    assert _counts(rt) == before
    changed = tmp_path / "c.yaml"
    changed.write_text(GOOD_SYSTEM, encoding="utf-8")
    _import(rt, changed)
    changed.write_text(GOOD_SYSTEM.replace("status: live", "status: migrating"), encoding="utf-8")
    result = _import(rt, changed)
    assert dict(result.updated) == {"system": 1}
    with rt.sessions() as s:
        assert s.get(System, "SYS-TEST-001").status == "migrating"
        last = s.scalars(select(AuditEntry).order_by(AuditEntry.seq.desc())).first()
        assert (last.action, last.object_id, last.actor) == ("inventory.system.update", "SYS-TEST-001", "tester")
        assert json.loads(last.payload) == {"status": "migrating"}


@pytest.mark.parametrize("fmt", ["yaml", "csv"])
def test_export_round_trip(rt: Runtime, tmp_path: Path, fmt: str) -> None:
    load_sample(rt)
    with rt.sessions() as s:
        text = export_text(s, fmt)
    path = tmp_path / f"export.{fmt}"
    path.write_text(text, encoding="utf-8")
    result = _import(rt, path)
    assert not result.created and not result.updated
    assert result.unchanged["system"] >= 150 and result.unchanged["prefix"] > 0


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_export_imports_into_empty_register(rt: Runtime, tmp_path: Path) -> None:
    load_sample(rt)
    with rt.sessions() as s:
        text = export_text(s, "csv")
        expected = {x.id: (x.mlps_level, x.hosting, x.department_code) for x in s.scalars(select(System))}
    from tests.conftest import make_runtime

    other = make_runtime(tmp_path / "other")
    path = tmp_path / "e.csv"
    path.write_text(text, encoding="utf-8")
    _import(other, path)
    with other.sessions() as s:
        got = {x.id: (x.mlps_level, x.hosting, x.department_code) for x in s.scalars(select(System))}
    other.close()
    assert got == expected


BROKEN = [
    # (name, file text, expected fragments of one error: line, field, reason)
    ("wrong type", GOOD_SYSTEM.replace("mlps_level: 2", "mlps_level: high"), (9, "mlps_level", "'high'")),
    ("unknown department", GOOD_SYSTEM.replace("department: TEST", "department: NOPE"),
     (7, "department", "unknown department 'NOPE'")),
    ("bad IP", GOOD_SYSTEM.replace("198.19.200.10", "198.19.300.10"), (21, "ipv4", "not an IPv4 address")),
    ("level 7", GOOD_SYSTEM.replace("mlps_level: 2", "mlps_level: 7"), (9, "mlps_level", "less than or equal to 4")),
    ("missing field", GOOD_SYSTEM.replace("    owner: 张三\n", ""), (5, "owner", "required field is missing")),
    ("level does not match grading", GOOD_SYSTEM.replace("mlps_level: 2", "mlps_level: 3"),
     (5, None, "does not match the GB/T 22240 grading")),
    ("unknown enum", GOOD_SYSTEM.replace("hosting: gov_cloud", "hosting: moon"), (15, "hosting", "'moon'")),
    ("boolean level", GOOD_SYSTEM.replace("mlps_level: 2", "mlps_level: true"), (9, "mlps_level", "not true/false")),
    ("future activity", GOOD_SYSTEM.replace("2026-11-01T00:00:00Z", "2999-01-01T00:00:00Z"),
     (19, "last_activity", "in the future")),
    ("dual stack host without IPv6", GOOD_SYSTEM.replace('ipv6: "2001:db8:ffff::10"', "ipv6: null"),
     (21, "ipv6", "IPv6 address is required")),
]


def _duplicate_id_file() -> str:
    system_block = GOOD_SYSTEM.split("systems:\n")[1].split("hosts:")[0]
    return GOOD_SYSTEM.replace("hosts:", system_block.replace("测试系统", "测试系统二") + "hosts:")


@pytest.mark.parametrize(("name", "text", "expect"), [*BROKEN, ("duplicate id", _duplicate_id_file(),
                                                                 (20, "id", "duplicate id 'SYS-TEST-001'"))],
                         ids=lambda v: v if isinstance(v, str) and len(v) < 40 else "")
def test_broken_file_rejected_and_nothing_written(rt: Runtime, tmp_path: Path, name: str, text: str,
                                                  expect: tuple[int, str | None, str]) -> None:
    load_sample(rt)
    before = _counts(rt)
    path = tmp_path / "broken.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ImportRejected) as info:
        _import(rt, path)
    line, field, reason = expect
    messages = [str(e) for e in info.value.errors]
    match = [e for e in info.value.errors if e.line == line and reason in e.reason
             and (field is None or e.field == field)]
    assert match, f"{name}: expected line {line} field {field} '{reason}', got {messages}"
    assert _counts(rt) == before  # nothing written, not even audit entries


def test_broken_csv_names_every_row(rt: Runtime, tmp_path: Path) -> None:
    load_sample(rt)
    before = _counts(rt)
    path = tmp_path / "systems.csv"
    header = ("id,name,department,owner,mlps_level,grading_info_object,grading_info_degree,grading_service_object,"
              "grading_service_degree,data_class,public_data_level,hosting,network_stack,network_zone,status,"
              "last_activity")
    rows = [
        "SYS-GAJ-901,新系统,GAJ,李四,2,合法权益,严重损害,社会秩序、公共利益,一般损害,一般数据,L2,政务云,双栈,政务外网,运行中,",
        "SYS-GAJ-902,坏系统,XXX,李四,2,citizen_rights,serious,public_order,general,general,L2,gov_cloud,dual,"
        "egov_extranet,live,",
        "SYS-GAJ-903,坏系统2,GAJ,李四,7,citizen_rights,serious,public_order,general,general,L2,gov_cloud,dual,"
        "egov_extranet,live,",
    ]
    path.write_text("\n".join([header, *rows, ",,,,,,,,,,,,,,,"]) + "\n", encoding="utf-8")  # a blank row is skipped
    with pytest.raises(ImportRejected) as info:
        _import(rt, path)
    by_line = {e.line: e for e in info.value.errors}
    assert set(by_line) == {3, 4}
    assert by_line[3].field == "department" and "XXX" in by_line[3].reason
    assert by_line[4].field == "mlps_level"
    assert _counts(rt) == before
    # the valid row alone (Chinese labels) imports
    path.write_text("\n".join([header, rows[0]]) + "\n", encoding="utf-8")
    assert _import(rt, path).created["system"] == 1
    with rt.sessions() as s:
        assert s.get(System, "SYS-GAJ-901").hosting == "gov_cloud"


def test_overlapping_prefix_and_address_clash(rt: Runtime, tmp_path: Path) -> None:
    load_sample(rt)
    with rt.sessions() as s:
        prefix = s.scalars(select(Prefix).where(Prefix.family == 4)).first()
        host = s.scalars(select(Host).where(Host.ipv4.is_not(None))).first()
        network, cidr, taken = prefix.network_code, prefix.cidr, host.ipv4
    inner = cidr.rsplit("/", 1)[0] + "/24"
    text = (f"networks:\n  - code: {network}\n    name: x\n    zone: egov_extranet\n    prefixes:\n"
            f"      - {{cidr: {inner}, purpose: 重叠}}\n"
            + GOOD_SYSTEM.replace("198.19.200.10", taken))
    path = tmp_path / "clash.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ImportRejected) as info:
        _import(rt, path)
    reasons = " | ".join(str(e) for e in info.value.errors)
    assert f"overlaps prefix {cidr}" in reasons
    assert f"address {taken} already belongs to host '{host.name}'" in reasons


def test_unreadable_files_are_rejected_clearly(rt: Runtime, tmp_path: Path) -> None:
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("systems: [\n", encoding="utf-8")
    with pytest.raises(FileFormatError, match="YAML syntax error"):
        _import(rt, bad_yaml)
    txt = tmp_path / "x.txt"
    txt.write_text("a", encoding="utf-8")
    with pytest.raises(FileFormatError, match="unknown file type"):
        _import(rt, txt)
    gbk = tmp_path / "gbk.csv"
    gbk.write_bytes("code,name\nAB,市测试局\n".encode("gbk"))
    with pytest.raises(FileFormatError, match="not UTF-8"):
        _import(rt, gbk)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_ansible_inventory(rt: Runtime) -> None:
    load_sample(rt)
    with rt.sessions() as s:
        inv = build_inventory(s)
        gaj_hosts = set(s.scalars(select(Host.name).join(System).where(
            System.department_code == "GAJ", System.status != "decommissioned")))
        decommissioned = set(s.scalars(select(Host.name).join(System).where(System.status == "decommissioned")))
    assert set(inv["dept_gaj"]["hosts"]) == gaj_hosts
    for prefix in ("dept_", "level_", "hosting_", "network_", "zone_"):
        assert any(g.startswith(prefix) for g in inv), prefix
    hostvars = inv["_meta"]["hostvars"]
    assert not decommissioned & set(hostvars)
    some = next(iter(hostvars.values()))
    assert some["ansible_host"] in (some["ipv4_address"], some["ipv6_address"])
    assert some["gov_mlps_level"] in (1, 2, 3, 4)
    members = {h for g, v in inv.items() if g.startswith("level_") for h in v["hosts"]}
    assert members == set(hostvars)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_cli_import_errors_and_ansible_list(rt: Runtime, tmp_path: Path) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return run_cli(rt.settings.home, *args, timeout=120,
                       env={"YUNSHU_DATABASE_URL": rt.settings.db_url, "COLUMNS": "200"})

    broken = tmp_path / "b.yaml"
    broken.write_text(GOOD_SYSTEM.replace("mlps_level: 2", "mlps_level: 7"), encoding="utf-8")
    out = cli("inventory", "import", str(broken))
    assert out.returncode == 1
    assert "line 9: system SYS-TEST-001, field 'mlps_level': Input should be less than or equal to 4" in out.stderr
    ok = cli("inventory", "import", str(SAMPLE))
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["created"]["system"] >= 150
    listed = cli("inventory", "ansible", "--list")
    assert listed.returncode == 0
    data = json.loads(listed.stdout)
    assert "_meta" in data and "dept_gaj" in data
    exported = cli("inventory", "export", "--format", "csv")
    assert exported.stdout.startswith("kind,code,name")
