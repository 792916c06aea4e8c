"""Instructions per event under callgrind (``invoke bench --only instructions``): a figure that does not move with
the other tenants of a shared machine, unlike events per second.

For each stage the same child program runs twice under ``valgrind --tool=callgrind``: once over ``--lines`` corpus
lines and once over ``--base`` lines. Everything the two runs share (interpreter start, imports, loading the rules)
cancels out in the difference, which is divided by the lines between them. Stages:

- ``parse_enrich``: ``Enricher(parse(line, "auto"))`` per line, as stage 1 of the ingest bench;
- ``detection``: ``Detector.process(event)`` per event with Yunshu's rules and SigmaHQ linux/web/network (the
  events parsed and enriched before the counted loop; the same 300 first events warm both runs).

The register index is built once by the parent (a control-plane database) and handed to the children as JSON, so
the children open no database. Results go to ``bench/results/instructions.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.corpus import DEFAULT_SEED, generate
from bench.report import machine_info, write_json

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
STAGES = ("parse_enrich", "detection")
_REFS = re.compile(r"I\s+refs:\s+([\d,]+)")


def _child(stage: str, count: int, tags_file: Path) -> None:
    """The counted program: ``count`` corpus lines through ``stage``."""
    from zoneinfo import ZoneInfo

    from soc.enrich import Enricher, RegisterIndex, SystemTag
    from soc.parsers import ParseContext, parse

    tags = json.loads(tags_file.read_text(encoding="utf-8"))
    enrich = Enricher(RegisterIndex({key: SystemTag(*tag) for key, tag in tags.items()}))
    ctx = ParseContext(tz=ZoneInfo("Asia/Shanghai"))
    lines = [line for _kind, line in generate(count + 300, DEFAULT_SEED)]
    warm, lines = lines[:300], lines[300:]
    if stage == "parse_enrich":
        for line in warm:
            enrich(parse(line, "auto", ctx))
        for line in lines:
            enrich(parse(line, "auto", ctx))
        return
    from bench.detect_bench import ruleset
    from soc.detect.engine import Detector

    detector = Detector(ruleset())
    events = [enrich(parse(line, "auto", ctx)) for line in warm + lines]
    for event in events[:300]:
        detector.process(event)
    for event in events[300:]:
        detector.process(event)


def _instructions(stage: str, count: int, tags_file: Path) -> int:
    """Instructions callgrind counted for the child over ``count`` lines."""
    command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, "-m",
               "bench.instructions", "--child", stage, "--lines", str(count), "--tags", str(tags_file)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    found = _REFS.search(done.stderr)
    if done.returncode != 0 or found is None:
        raise SystemExit(f"callgrind run of {stage} over {count} lines failed (exit {done.returncode}):\n"
                         f"{done.stderr[-2000:]}")
    return int(found.group(1).replace(",", ""))


def _tags(workdir: Path) -> Path:
    """The sample register's index as JSON (key → system id, department, 等保 level, data class)."""
    from bench.ingest_bench import register_index

    index = register_index(workdir / "home")
    path = workdir / "tags.json"
    path.write_text(json.dumps({key: [t.system_id, t.department, t.mlps_level, t.data_class]
                                for key, t in index.by_key.items()}), encoding="utf-8")
    return path


def measure(lines: int, base: int) -> dict[str, Any]:
    """Instructions per event of each stage (difference of a ``lines`` and a ``base`` run)."""
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (Debian package valgrind)")
    if lines <= base:
        raise SystemExit(f"--lines ({lines}) must exceed --base ({base})")
    with tempfile.TemporaryDirectory(prefix="yunshu-instructions-") as tmp:
        tags = _tags(Path(tmp))
        stages = {}
        for stage in STAGES:
            full, short = _instructions(stage, lines, tags), _instructions(stage, base, tags)
            stages[stage] = {"instructions_per_event": round((full - short) / (lines - base)),
                             "instructions_total": full, "instructions_base": short}
    return {"lines": lines, "base": base, "seed": DEFAULT_SEED, "stages": stages, "machine": machine_info(ROOT)}


def markdown(result: dict[str, Any]) -> str:
    rows = [f"| {stage} | {data['instructions_per_event']:,} |" for stage, data in result["stages"].items()]
    return "\n".join([
        "# 每事件指令数 / Instructions per event (callgrind)", "",
        f"Corpus lines {result['base']:,} → {result['lines']:,} (seed {result['seed']}); the difference of the two "
        "runs divided by the lines between them.", "",
        "| Stage | Instructions per event |", "|---|---:|", *rows, "",
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=6000)
    parser.add_argument("--base", type=int, default=1000)
    parser.add_argument("--child", choices=STAGES, help=argparse.SUPPRESS)
    parser.add_argument("--tags", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child, args.lines, args.tags)
        return 0
    result = measure(args.lines, args.base)
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_json(RESULTS / "instructions.json", result)
    (RESULTS / "instructions.md").write_text(markdown(result), encoding="utf-8")
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
