"""The benchmark's results: machine facts, the JSON results file and its markdown table."""

from __future__ import annotations

import json
import os
import platform
import sqlite3
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from soc import native


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (or what platform knows)."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def git_commit(root: Path) -> str:
    """HEAD of the work tree (with ``-dirty`` when it has changes), or "" outside git."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                              timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""
    return f"{head}-dirty" if head and dirty else head


def machine_info(root: Path) -> dict[str, Any]:
    """What the numbers were measured on."""
    return {
        "cpu_model": cpu_model(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "sqlite": sqlite3.sqlite_version,
        "os": f"{platform.system()} {platform.release()}",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "git": git_commit(root),
        "hot_path": native.summary(),
    }


def write_json(path: Path, results: dict[str, Any]) -> None:
    """Write atomically (a ``.tmp`` beside it, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(results, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)


def _rate(value: float | None) -> str:
    return "—" if not value else f"{value:,.0f}"


def summary_rows(results: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(measurement, events/s, target, verdict) rows shared by the markdown file and the console table."""
    s1, s2, peer = results["stage1"], results["stage2"], results["rsyslog"]
    t1, t2 = results["targets"]["stage1_events_per_s"], results["targets"]["stage2_events_per_s"]
    rows = [
        ("Yunshu parse + normalise + enrich, 1 core", _rate(s1["events_per_s"]), f"≥ {t1:,}",
         "PASS" if s1["pass"] else "FAIL"),
        ("  same, 2000-event batches held (as the pipeline does)", _rate(s1["batched_events_per_s"]), "", ""),
        ("Yunshu end to end: file → embedded SQLite store, 1 core", _rate(s2["events_per_s"]), f"≥ {t2:,}",
         "PASS" if s2["pass"] else "FAIL"),
    ]
    s2_all = results.get("stage2_all_cpus")
    if s2_all:
        rows.append((f"  same on {len(s2_all['cpus'])} CPUs (parsing and SQLite writes overlap)",
                     _rate(s2_all["events_per_s"]), f"≥ {t2:,}", "PASS" if s2_all["pass"] else "FAIL"))
    one = peer.get("one_core", {})
    if one.get("ran"):
        rows.append(("rsyslog RFC 3164 header parse → file, 1 core", _rate(one["lines_per_s"]), "", ""))
        rows.append(("  ratio Yunshu parse + enrich / rsyslog", f"{peer['ratio_stage1']:.2f}×", "", ""))
        rows.append(("  ratio Yunshu end to end / rsyslog", f"{peer['ratio_stage2']:.2f}×", "", ""))
        every = peer.get("all_cores", {})
        if every.get("ran"):
            rows.append((f"rsyslog, unpinned ({len(every['cpus'])} CPUs)", _rate(every["lines_per_s"]), "", ""))
    else:
        rows.append(("rsyslog", "not run", "", one.get("error") or peer.get("error", "")))
    return rows


def _runs(one: dict[str, Any], every: dict[str, Any] | None) -> str:
    """The end-to-end rate of each run, when there were several (the table shows the best)."""
    if "runs_events_per_s" not in one:
        return ""
    text = f" End to end, each run (events/s): 1 core {', '.join(f'{r:,}' for r in one['runs_events_per_s'])}"
    if every and "runs_events_per_s" in every:
        text += f"; {len(every['cpus'])} CPUs {', '.join(f'{r:,}' for r in every['runs_events_per_s'])}"
    return text + "."


def markdown(results: dict[str, Any]) -> str:
    """The results as a markdown table with the machine and corpus underneath."""
    m, c = results["machine"], results["corpus"]
    lines = ["| Measurement | events/s | Target | Result |", "|---|---:|---:|---|"]
    lines += [f"| {a.strip()} | {b} | {t} | {v} |" for a, b, t, v in summary_rows(results)]
    s1, s2 = results["stage1"], results["stage2"]
    kinds = ", ".join(f"{k} {v:,}" for k, v in c["kinds"].items())
    lines += [
        "",
        f"Corpus: {c['lines']:,} lines ({kinds}), seed {c['seed']}, {c['bytes'] / 1e6:.0f} MB. "
        f"Parse errors: {s1['parse_errors']}; events enriched with `gov.system.id`: {s1['enriched_fraction']:.1%}. "
        f"End to end: {s2['stored']:,} events stored, {s2['dead_lettered']} dead-lettered, "
        f"{s2['store_write_share']:.0%} of the time inside the store's write"
        + (f"; the side index (text and keys) caught up {s2['text_index_lag_seconds']:.2f} s after the last write "
           "(inside the timed run)." if "text_index_lag_seconds" in s2 else ".")
        + _runs(s2, results.get("stage2_all_cpus")),
        "",
        f"Machine: {m['cpu_model']}, {m['cpus']} CPUs (measured on CPU {results['pinned_cpu']}), "
        f"Python {m['python']} (hot path {m.get('hot_path', 'pure Python')}), SQLite {m['sqlite']}, {m['os']}; "
        f"{m['date']}, commit {m['git'] or 'n/a'}.",
    ]
    anatomy = results.get("store_anatomy")
    if anatomy:
        lines += ["", "Where the embedded store's time goes (SQLite work on prepared rows, "
                  f"{anatomy['rows']:,} rows):", "",
                  "| Schema | µs/row | rows/s |", "|---|---:|---:|"]
        lines += [f"| {v['schema']} | {v['us_per_row']:.1f} | {v['rows_per_s']:,.0f} |" for v in anatomy["variants"]]
    lines += ["", results["notes"]["rsyslog"]]
    if results["notes"].get("run"):
        lines += ["", results["notes"]["run"]]
    return "\n".join(lines) + "\n"
