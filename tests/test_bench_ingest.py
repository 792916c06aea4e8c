"""The ingest benchmark's plumbing on a small corpus (no speed checks here): every stage-2 run stores every line, the
best of the runs is reported with each run's rate, and the markdown names them."""

from __future__ import annotations

import json
from pathlib import Path

from bench import ingest_bench


def test_small_run_reports_best_of_each_end_to_end_run(tmp_path: Path) -> None:
    results = tmp_path / "results"
    code = ingest_bench.main(["--lines", "3000", "--repeat", "2", "--anatomy-lines", "0", "--skip-rsyslog",
                              "--cpu", "-1", "--workdir", str(tmp_path / "work"), "--results", str(results)])
    assert code == 0
    data = json.loads((results / "ingest.json").read_text(encoding="utf-8"))
    for stage in ("stage2", "stage2_all_cpus"):
        runs = data[stage]["runs_events_per_s"]
        assert len(runs) == 2 and data[stage]["events_per_s"] == max(runs)
        assert data[stage]["store_count"] == 3000 and data[stage]["count_matches"]
    report = (results / "ingest.md").read_text(encoding="utf-8")
    assert "End to end, each run (events/s): 1 core " in report
    assert f"{data['stage2']['runs_events_per_s'][0]:,}" in report
