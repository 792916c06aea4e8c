"""Instructions per event under callgrind (``invoke bench --only instructions``): a figure that does not move with
the other tenants of a shared machine, unlike events per second.

Each child program runs twice under ``valgrind --tool=callgrind``: over ``--lines`` corpus lines and over ``--base``
lines. What the two runs share (interpreter start, imports, loading the rules) cancels out in the difference, which
is divided by the lines between them. The children do cumulative work, so that one difference less another leaves
exactly one step:

- ``read``: the corpus file's lines into a list;
- ``parse``: the same, then ``Enricher(parse(line, "auto"))`` of every line into a list (as stage 1 of the ingest
  bench, the pipeline's garbage-collector settings);
- ``rules_parse``: Yunshu's rules and SigmaHQ linux/web/network loaded into a detector, then what ``parse`` does
  (parsing after the rules are loaded costs more instructions than before: the subtraction needs the same prefix);
- ``detect``: what ``rules_parse`` does, then ``Detector.process(event)`` of every event.

Reported: **parse + enrich** = parse − read, **detection** = detect − rules_parse, per event. The children run with
``PYTHONHASHSEED=0``: with random string hashes, loading the rules alone varied by tens of millions of instructions
between two runs (±5k an event in the difference). The corpus file and the
register index (built once by the parent from a control-plane database, handed over as JSON: the children open no
database) are written by the parent. Results go to ``bench/results/instructions.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
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
CHILDREN = ("read", "parse", "rules_parse", "detect")
STAGES = {"parse_enrich": ("parse", "read"), "detection": ("detect", "rules_parse")}  # stage → (child, less this)
HASH_SEED = "0"
WARM = 300  # events that warm the detector before the counted ones (in both runs)
_REFS = re.compile(r"I\s+refs:\s+([\d,]+)")


def _child(child: str, count: int, workdir: Path) -> None:
    """The counted program: the first ``WARM + count`` corpus lines through the steps up to ``child``."""
    from zoneinfo import ZoneInfo

    from soc.enrich import Enricher, RegisterIndex, SystemTag
    from soc.parsers import ParseContext, parse
    from soc.pipeline import ingest_gc

    with (workdir / "corpus.log").open(encoding="utf-8") as fh:
        lines = [next(fh).rstrip("\n") for _ in range(WARM + count)]
    if child == "read":
        return
    tags = json.loads((workdir / "tags.json").read_text(encoding="utf-8"))
    enrich = Enricher(RegisterIndex({key: SystemTag(*tag) for key, tag in tags.items()}))
    ctx = ParseContext(tz=ZoneInfo("Asia/Shanghai"))
    detector = None
    if child in ("rules_parse", "detect"):  # the rules load before any line is parsed: the same in both runs
        from bench.detect_bench import ruleset
        from soc.detect.engine import Detector

        detector = Detector(ruleset())
    with ingest_gc():
        events = [enrich(parse(line, "auto", ctx)) for line in lines]
        if child == "detect" and detector is not None:
            for event in events:
                detector.process(event)


def _instructions(child: str, count: int, workdir: Path) -> int:
    """Instructions callgrind counted for the child over ``count`` lines."""
    command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, "-m",
               "bench.instructions", "--child", child, "--lines", str(count), "--workdir", str(workdir)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False,
                          env={**os.environ, "PYTHONHASHSEED": HASH_SEED})
    found = _REFS.search(done.stderr)
    if done.returncode != 0 or found is None:
        raise SystemExit(f"callgrind run of {child} over {count} lines failed (exit {done.returncode}):\n"
                         f"{done.stderr[-2000:]}")
    return int(found.group(1).replace(",", ""))


def prepare(workdir: Path, lines: int) -> None:
    """The children's inputs: ``corpus.log`` (the seeded corpus's first lines) and ``tags.json``, the sample
    register's index (key → system id, department, 等保 level, data class)."""
    from bench.ingest_bench import register_index

    with (workdir / "corpus.log").open("w", encoding="utf-8") as fh:
        for _kind, line in generate(WARM + lines, DEFAULT_SEED):
            fh.write(line + "\n")
    index = register_index(workdir / "home")
    (workdir / "tags.json").write_text(json.dumps({key: [t.system_id, t.department, t.mlps_level, t.data_class]
                                                   for key, t in index.by_key.items()}), encoding="utf-8")


def measure(lines: int, base: int) -> dict[str, Any]:
    """Instructions per event of each stage (see the module docstring)."""
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (Debian package valgrind)")
    if lines <= base:
        raise SystemExit(f"--lines ({lines}) must exceed --base ({base})")
    with tempfile.TemporaryDirectory(prefix="yunshu-instructions-") as tmp:
        workdir = Path(tmp)
        prepare(workdir, lines)
        per_event = {child: (_instructions(child, lines, workdir) - _instructions(child, base, workdir))
                     / (lines - base) for child in CHILDREN}
    stages = {stage: {"instructions_per_event": round(per_event[child] - per_event[less])}
              for stage, (child, less) in STAGES.items()}
    return {"lines": lines, "base": base, "seed": DEFAULT_SEED, "hash_seed": HASH_SEED, "stages": stages,
            "children_per_event": {child: round(value) for child, value in per_event.items()},
            "machine": machine_info(ROOT)}


def markdown(result: dict[str, Any]) -> str:
    rows = [f"| {stage} | {data['instructions_per_event']:,} |" for stage, data in result["stages"].items()]
    return "\n".join([
        "# 每事件指令数 / Instructions per event (callgrind)", "",
        f"Corpus lines {result['base']:,} → {result['lines']:,} (seed {result['seed']}): each child program's "
        "difference between the two runs divided by the lines between them; parse_enrich = parse − read, "
        "detection = detect − rules_parse; PYTHONHASHSEED=0.", "",
        "| Stage | Instructions per event |", "|---|---:|", *rows, "",
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=6000)
    parser.add_argument("--base", type=int, default=1000)
    parser.add_argument("--child", choices=CHILDREN, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child, args.lines, args.workdir)
        return 0
    result = measure(args.lines, args.base)
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_json(RESULTS / "instructions.json", result)
    (RESULTS / "instructions.md").write_text(markdown(result), encoding="utf-8")
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
