"""Migration waves that respect system dependencies: chains, cross-level dependencies, cycles moving together,
finished dependencies imposing nothing, and ``net wave-run`` refusing to run a wave ahead of its dependencies."""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session

from core.runtime import Runtime
from infra.waves import Wave, plan_waves
from inventory.models import Department, System
from portal.app import create_app
from tests.conftest import Portal, make_runtime
from tests.test_auth import login

PENDING = {"hosting": "local_idc", "network_stack": "ipv4", "network_zone": "egov_extranet", "status": "live"}
DONE = {"hosting": "gov_cloud", "network_stack": "dual", "network_zone": "egov_extranet", "status": "live"}
DECOMMISSIONED = {**PENDING, "status": "decommissioned"}


@dataclass(frozen=True)
class Spec:
    """A system for a test register: id suffix, 等保 level, department, the ids it needs, its state."""

    id: str
    level: int = 2
    dept: str = "DA"
    needs: tuple[str, ...] = ()
    state: str = "pending"


def sid(short: str) -> str:
    return f"SYS-{short}"


def add_register(session: Session, specs: list[Spec]) -> None:
    """Departments and systems of ``specs`` (inside the caller's transaction)."""
    for code in sorted({s.dept for s in specs}):
        if session.get(Department, code) is None:
            session.add(Department(code=code, name=f"测试部门{code}"))
    session.flush()
    states = {"pending": PENDING, "done": DONE, "decommissioned": DECOMMISSIONED}
    systems = {s.id: System(
        id=sid(s.id), name=f"系统{s.id}", department_code=s.dept, owner="张三", mlps_level=s.level,
        grading_info_object="citizen_rights", grading_info_degree="serious", grading_service_object="public_order",
        grading_service_degree="general", data_class="general", public_data_level="L2", **states[s.state],
    ) for s in specs}
    session.add_all(systems.values())
    session.flush()
    for s in specs:
        systems[s.id].depends_on = [systems[n] for n in s.needs]
    session.flush()


def shape(waves: list[Wave]) -> list[tuple[int, list[str]]]:
    """Each wave as (level, ids without the SYS- prefix)."""
    return [(w.mlps_level, [s["id"].removeprefix("SYS-") for s in w.systems]) for w in waves]


@pytest.fixture(scope="module")
def module_rt(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    rt = make_runtime(tmp_path_factory.mktemp("waves") / "var")
    yield rt
    rt.close()


@pytest.fixture
def session(module_rt: Runtime) -> Iterator[Session]:
    """A session whose writes are rolled back after the test."""
    with module_rt.sessions() as s:
        s.begin()
        try:
            yield s
        finally:
            s.rollback()


def test_chain_goes_dependencies_first(session: Session) -> None:
    # by id alone the order would be A1, A2, A3
    add_register(session, [Spec("A1", needs=("A2",)), Spec("A2", needs=("A3",)), Spec("A3")])
    assert shape(plan_waves(session, wave_size=1)) == [(2, ["A3"]), (2, ["A2"]), (2, ["A1"])]
    together = plan_waves(session, wave_size=3)
    assert shape(together) == [(2, ["A3", "A2", "A1"])]
    assert [s["depends_on"] for s in together[0].systems] == [[], [sid("A3")], [sid("A2")]]
    assert together[0].waiting_on == {}  # the dependencies are in the same wave


def test_cross_level_dependency_moves_the_level3_system_ahead(rt: Runtime) -> None:
    """SQLite and PostgreSQL: a level-2 system needing a level-3 one goes in a level-2 wave after it."""
    with rt.transaction() as s:
        add_register(s, [Spec("B01"), Spec("B02", needs=("C01",)), Spec("B03", dept="DB"),
                         Spec("C01", level=3, dept="DB"), Spec("C02", level=3)])
    with rt.sessions() as s:
        waves = plan_waves(s, wave_size=2)
    # without the dependency: [(2, [B01, B02]), (2, [B03]), (3, [C02, C01])]
    assert shape(waves) == [(2, ["B01", "B03"]), (3, ["C02", "C01"]), (2, ["B02"])]
    assert [w.number for w in waves] == [1, 2, 3]
    assert waves[2].systems[0]["depends_on"] == [sid("C01")] and waves[2].systems[0]["mlps_level"] == 2
    assert waves[2].waiting_on == {sid("B02"): [sid("C01")]}
    assert waves[2].as_dict()["departments"] == ["DA"]


def test_three_cycle_moves_together_even_beyond_the_wave_size(session: Session) -> None:
    add_register(session, [Spec("X1", level=1, needs=("X2",)), Spec("X2", level=2, needs=("X3",)),
                           Spec("X3", level=3, needs=("X1",)), Spec("Y1", level=1), Spec("Y2", level=3)])
    waves = plan_waves(session, wave_size=2)
    assert shape(waves) == [(1, ["Y1"]), (3, ["X1", "X2", "X3"]), (3, ["Y2"])]
    assert [w.oversized_for_cycle for w in waves] == [False, True, False]
    assert waves[1].as_dict()["oversized_for_cycle"] is True
    assert [s["mlps_level"] for s in waves[1].systems] == [1, 2, 3]  # the cycle takes its highest level
    roomy = plan_waves(session, wave_size=4)
    assert shape(roomy) == [(1, ["Y1"]), (3, ["X1", "X2", "X3", "Y2"])]
    assert not any(w.oversized_for_cycle for w in roomy)


def test_two_cycle_and_its_dependent(session: Session) -> None:
    """A cycle is placed as one unit; what needs one of its members comes after (or with) the whole cycle."""
    add_register(session, [Spec("K1", needs=("K2",)), Spec("K2", needs=("K1",)), Spec("A0", needs=("K2",)),
                           Spec("Z9")])
    # by id A0 would go first; it waits for the cycle, then its id puts it ahead of Z9 again
    assert shape(plan_waves(session, wave_size=2)) == [(2, ["K1", "K2"]), (2, ["A0", "Z9"])]
    small = plan_waves(session, wave_size=1)
    assert shape(small) == [(2, ["K1", "K2"]), (2, ["A0"]), (2, ["Z9"])]
    assert [w.oversized_for_cycle for w in small] == [True, False, False]


def test_finished_dependencies_impose_nothing_but_are_shown(session: Session) -> None:
    add_register(session, [Spec("D1", level=3, state="done"), Spec("D2", level=4, state="decommissioned"),
                           Spec("E1", level=1, needs=("D1", "D2")), Spec("E2", level=1)])
    waves = plan_waves(session, wave_size=2)
    assert shape(waves) == [(1, ["E1", "E2"])]  # neither D1 nor D2 is planned; E1 keeps its place
    assert waves[0].systems[0]["depends_on"] == [sid("D1"), sid("D2")]
    assert waves[0].waiting_on == {}


def test_dependency_outside_the_scope_does_not_order_but_waits(session: Session) -> None:
    add_register(session, [Spec("F1", level=1, needs=("G1",)), Spec("F2", level=1), Spec("G1", level=3, dept="DB")])
    scoped = plan_waves(session, wave_size=5, departments={"DA"})
    assert shape(scoped) == [(1, ["F1", "F2"])]
    assert scoped[0].waiting_on == {sid("F1"): [sid("G1")]}
    assert shape(plan_waves(session, wave_size=5)) == [(1, ["F2"]), (3, ["G1"]), (1, ["F1"])]


def test_without_dependencies_the_plan_is_level_department_id_in_chunks(session: Session) -> None:
    specs = [Spec(f"N{i:02d}", level=1 + i % 3, dept=("DA", "DB", "DC")[i % 2]) for i in range(11)]
    add_register(session, specs)
    expected: list[tuple[int, list[str]]] = []
    for s in sorted(specs, key=lambda s: (s.level, s.dept, s.id)):
        if not expected or expected[-1][0] != s.level or len(expected[-1][1]) >= 2:
            expected.append((s.level, []))
        expected[-1][1].append(s.id)
    assert shape(plan_waves(session, wave_size=2)) == expected
    assert all(len(w.systems) <= 2 for w in plan_waves(session, wave_size=2))


# --- property: any dependency graph, cycles included -----------------------------------------------------------

@st.composite
def registers(draw: st.DrawFn) -> tuple[list[Spec], int]:
    n = draw(st.integers(1, 12))
    ids = [f"P{i:02d}" for i in range(n)]
    specs = []
    for i in ids:
        needs = draw(st.lists(st.sampled_from(ids), max_size=4, unique=True).map(
            lambda xs, me=i: tuple(x for x in xs if x != me)))
        specs.append(Spec(i, level=draw(st.integers(1, 4)), dept=draw(st.sampled_from(["DA", "DB", "DC"])),
                          needs=needs, state=draw(st.sampled_from(["pending"] * 4 + ["done", "decommissioned"]))))
    return specs, draw(st.integers(1, 5))


def _reaches(nodes: set[str], edges: dict[str, set[str]]) -> dict[str, set[str]]:
    """Transitive closure by repeated expansion (independent of the module's Tarjan)."""
    reach = {a: set(edges[a]) for a in nodes}
    changed = True
    while changed:
        changed = False
        for a in nodes:
            more = set().union(*(reach[b] for b in reach[a])) - reach[a]
            if more:
                reach[a] |= more
                changed = True
    return reach


@settings(max_examples=150, deadline=None)
@given(registers())
def test_property_every_system_once_and_never_before_what_it_needs(module_rt: Runtime,
                                                                   case: tuple[list[Spec], int]) -> None:
    specs, size = case
    with module_rt.sessions() as session:
        session.begin()
        try:
            add_register(session, specs)
            waves = plan_waves(session, wave_size=size)
        finally:
            session.rollback()
    planned = {s.id for s in specs if s.state == "pending"}
    level = {s.id: s.level for s in specs}
    placed = [s["id"].removeprefix("SYS-") for w in waves for s in w.systems]
    assert sorted(placed) == sorted(planned)  # every planned system in exactly one wave, nothing else
    wave_of = {s["id"].removeprefix("SYS-"): w.number for w in waves for s in w.systems}
    assert [w.number for w in waves] == list(range(1, len(waves) + 1))

    edges = {s.id: {n for n in s.needs if n in planned} for s in specs if s.id in planned}
    for a, needs in edges.items():
        for b in needs:
            assert wave_of[a] >= wave_of[b], f"{a} (wave {wave_of[a]}) needs {b} (wave {wave_of[b]})"
    reach = _reaches(planned, edges)
    for a in planned:
        for b in reach[a]:
            if a in reach[b]:  # a and b are on one cycle
                assert wave_of[a] == wave_of[b], f"{a} and {b} need each other but are in different waves"
    for w in waves:
        ids = [s["id"].removeprefix("SYS-") for s in w.systems]
        if len(ids) > size:
            assert w.oversized_for_cycle and all(b in reach[a] for a in ids for b in ids if a != b)
        else:
            assert not w.oversized_for_cycle
        for a in ids:
            on_cycle = a in reach[a]
            assert level[a] == w.mlps_level or (on_cycle and level[a] < w.mlps_level)
        for s in w.systems:
            me = next(x for x in specs if x.id == s["id"].removeprefix("SYS-"))
            assert s["depends_on"] == sorted(sid(n) for n in me.needs)


# --- net wave-run ---------------------------------------------------------------------------------------------

@pytest.fixture
def cli_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[list[str], bool]]]:
    """A register for the CLI (Q1 ← P1 across departments, both needing dual stack); the migration is replaced
    by a recorder of the systems it was asked to migrate."""
    home = tmp_path / "var"
    rt = make_runtime(home)
    with rt.transaction() as s:
        add_register(s, [Spec("Q1", level=1, dept="DB"), Spec("P1", level=1, needs=("Q1",)), Spec("P2", level=1)])
    rt.close()
    monkeypatch.setenv("YUNSHU_HOME", str(home))
    monkeypatch.delenv("YUNSHU_DATABASE_URL", raising=False)
    runs: list[tuple[list[str], bool]] = []
    import infra.ipv6_migration
    import portal.cli_jobs

    def fake_migrate(_rt: Any, scope: list[str], _actor: str, *, check: bool = False, **_: Any) -> dict[str, Any]:
        runs.append((scope, check))
        return {}

    monkeypatch.setattr(infra.ipv6_migration, "migrate_ipv6", fake_migrate)
    def fake_run(_args: argparse.Namespace, start: Any) -> int:
        start(None)
        return 0

    monkeypatch.setattr(portal.cli_jobs, "_run_with_progress", fake_run)
    yield runs


def _wave_run(*argv: str) -> int:
    from portal.cli import build_parser

    args: argparse.Namespace = build_parser().parse_args(["net", "wave-run", *argv])
    return int(args.func(args))


def test_wave_run_refuses_while_an_earlier_wave_is_not_done(cli_home: list[tuple[list[str], bool]],
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    # size 1: wave 1 [P2], wave 2 [Q1] (department DB), wave 3 [P1] needing Q1
    assert _wave_run("3", "--size", "1") == 2
    err = capsys.readouterr().err
    assert "wave 3 refused" in err and "SYS-P1 needs SYS-Q1 (wave 2)" in err and "--ignore-dependencies" in err
    assert cli_home == []  # nothing was started
    assert _wave_run("1", "--size", "1", "--scope", "DA") == 2  # scoped to DA: P1 first, Q1 is outside
    assert "SYS-P1 needs SYS-Q1 (outside the scope)" in capsys.readouterr().err
    assert _wave_run("1", "--size", "1") == 0 and _wave_run("2", "--size", "1") == 0  # P2, Q1: nothing to wait for
    assert _wave_run("3", "--size", "1", "--check") == 0  # check mode changes nothing: it warns and runs
    assert "SYS-P1 needs SYS-Q1 (wave 2)" in capsys.readouterr().err
    assert _wave_run("3", "--size", "1", "--ignore-dependencies") == 0
    assert cli_home == [([sid("P2")], False), ([sid("Q1")], False), ([sid("P1")], True), ([sid("P1")], False)]


def test_wave_run_with_the_dependency_in_the_same_wave(cli_home: list[tuple[list[str], bool]]) -> None:
    assert _wave_run("1", "--size", "3") == 0  # wave 1 [P2, Q1, P1]: Q1 runs with P1
    assert cli_home == [([sid("P2"), sid("Q1"), sid("P1")], False)]


def test_network_page_shows_each_systems_dependencies(portal: Portal) -> None:
    """网络迁移 on the sample city: a dependency still ahead, one in the same wave (the 社保 cycle), one done."""
    with TestClient(create_app(portal.rt)) as client:
        assert login(client, "platform-engineer").status_code == 303
        html = client.get("/net").text
    rows = {m["sys"]: m["deps"] for m in re.finditer(r'<div data-system="(?P<sys>[^"]+)">(?P<deps>.*?)</div>', html,
                                                     re.S)}
    marks = {sys: dict((d, cls) for cls, d in re.findall(r'class="[^"]*dep-(\w+)"[^>]*>([^<]+)<', deps))
             for sys, deps in rows.items()}
    assert marks["SYS-XZSPJ-001"] == {"SYS-DSJ-005": "waiting", "SYS-DSJ-006": "done", "SYS-XZSPJ-004": "done",
                                      "SYS-XZSPJ-005": "waiting"}
    assert marks["SYS-RSJ-001"] == {"SYS-RSJ-005": "same"} and marks["SYS-RSJ-005"] == {"SYS-RSJ-001": "same"}
    assert "依赖" in html and "SYS-GAJ-008" not in marks  # done systems are in no wave
