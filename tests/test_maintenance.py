"""The service's maintenance loop runs the ticket maintenance repeatedly and survives a failing round."""

from __future__ import annotations

import asyncio
from pathlib import Path

import portal.maintenance as maintenance
from tests.conftest import make_runtime


def test_loop_runs_rounds_and_survives_failures(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    rt = make_runtime(tmp_path / "var")
    calls: list[int] = []

    def fake_maintain(runtime):  # type: ignore[no-untyped-def]
        assert runtime is rt
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("database briefly unavailable")
        return {"escalated": ["TKT-1"], "reminded": [], "reclaiming": [], "closed": []}

    monkeypatch.setattr(maintenance, "maintain", fake_maintain)

    async def run() -> None:
        task = asyncio.create_task(maintenance.maintenance_loop(rt, interval=0.01))
        while len(calls) < 3:
            await asyncio.sleep(0.01)
        task.cancel()

    try:
        asyncio.run(asyncio.wait_for(run(), timeout=10))
    finally:
        rt.close()
    assert len(calls) >= 3  # the failing first round did not stop the loop


def test_real_maintenance_round_on_an_empty_register(tmp_path: Path) -> None:
    rt = make_runtime(tmp_path / "var")
    try:
        assert maintenance.maintain(rt) == {"escalated": [], "reminded": [], "reclaiming": [], "closed": []}
    finally:
        rt.close()
