"""The 等保 benchmark runs end to end at a small size and writes its JSON and markdown (timing is not asserted)."""

from __future__ import annotations

import json
from pathlib import Path

from bench.mlps_bench import main


def test_bench_writes_results(tmp_path: Path) -> None:
    assert main(["--systems", "12", "--repeat", "1", "--results", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "mlps.json").read_text(encoding="utf-8"))
    assert data["systems"] == 12 and data["requirements_evaluated"] == 12 * data["catalog"]["requirements_per_system"]
    assert data["catalog"]["general"] == 211 and sum(data["results"].values()) == data["requirements_evaluated"]
    assert set(data["timing"]) >= {"total_s", "total_cpu_s", "evaluate_s", "validate_s"}
    assert "| 12 level-3 systems" in (tmp_path / "mlps.md").read_text(encoding="utf-8")
