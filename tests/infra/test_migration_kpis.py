"""上云率 / 双栈率 / 专网整合率 and migration waves from the register (the sample city)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from core.runtime import Runtime
from infra.migration_kpis import CITY, migration_kpis
from infra.waves import needed_steps, plan_waves
from inventory.models import System
from tests.conftest import load_sample, make_runtime, sample_city


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    with sample_city(tmp_path_factory, "kpi") as rt:
        yield rt


def test_kpis_agree_with_the_register(city: Runtime) -> None:
    with city.sessions() as session:
        kpis = migration_kpis(session)
        live = [s for s in session.scalars(select(System)) if s.status != "decommissioned"]
    total = kpis[-1]
    assert total.department == CITY and total.systems == len(live)
    assert total.on_gov_cloud == sum(s.hosting == "gov_cloud" for s in live)
    assert total.dual_stack == sum(s.network_stack in ("dual", "ipv6") for s in live)
    assert total.on_extranet == sum(s.network_zone == "egov_extranet" for s in live)
    assert 0 < total.cloud_rate < 1 and 0 < total.dual_stack_rate < 1  # the sample city is mid-migration
    gaj = next(k for k in kpis if k.department == "GAJ")
    gaj_live = [s for s in live if s.department_code == "GAJ"]
    assert gaj.systems == len(gaj_live) and gaj.cloud_rate == round(
        sum(s.hosting == "gov_cloud" for s in gaj_live) / len(gaj_live), 4)
    assert sum(k.systems for k in kpis[:-1]) == total.systems


def test_kpis_follow_a_scope_and_an_empty_scope(city: Runtime) -> None:
    with city.sessions() as session:
        scoped = migration_kpis(session, {"GAJ"})
        empty = migration_kpis(session, set())
    assert [k.department for k in scoped] == ["GAJ", CITY] and scoped[0].systems == scoped[1].systems
    assert empty[-1].systems == 0 and empty[-1].cloud_rate is None


def test_waves_go_from_lower_levels_up_and_skip_finished_systems(city: Runtime) -> None:
    with city.sessions() as session:
        waves = plan_waves(session, wave_size=5)
        pending = {s.id for s in session.scalars(select(System))
                   if s.status != "decommissioned" and needed_steps(s)}
        done = {s.id for s in session.scalars(select(System)) if not needed_steps(s)}
    levels = [w.mlps_level for w in waves]
    assert levels == sorted(levels) and all(1 <= len(w.systems) <= 5 for w in waves)
    planned = [s["id"] for w in waves for s in w.systems]
    assert len(planned) == len(set(planned)) and set(planned) == pending and not done & set(planned)
    assert [w.number for w in waves] == list(range(1, len(waves) + 1))
    with pytest.raises(ValueError, match="wave size must be at least 1"):
        plan_waves(session, wave_size=0)


def test_dual_stack_migration_moves_the_kpi(tmp_path: Path) -> None:
    rt = make_runtime(tmp_path / "var")
    try:
        load_sample(rt)
        with rt.transaction() as session:
            before = migration_kpis(session)[-1]
            system = session.scalars(select(System).where(System.network_stack == "ipv4",
                                                          System.status != "decommissioned")).first()
            system.network_stack = "dual"
        with rt.sessions() as session:
            after = migration_kpis(session)[-1]
        assert after.dual_stack == before.dual_stack + 1 and after.dual_stack_rate > before.dual_stack_rate
    finally:
        rt.close()
