"""The instruction-count benchmark's parts that run without valgrind: the counted programs and the report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import instructions


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("instructions")
    instructions.prepare(path, 60)
    return path


def test_the_children_get_the_corpus_and_the_register_index(workdir: Path) -> None:
    data = json.loads((workdir / "tags.json").read_text(encoding="utf-8"))
    assert data and all(len(tag) == 4 and isinstance(tag[2], int) for tag in data.values())
    assert len((workdir / "corpus.log").read_text(encoding="utf-8").splitlines()) == instructions.WARM + 60


def test_each_stage_is_one_child_less_another() -> None:
    assert {child for pair in instructions.STAGES.values() for child in pair} == set(instructions.CHILDREN)


@pytest.mark.parametrize("child", instructions.CHILDREN)
def test_each_counted_program_runs(child: str, workdir: Path) -> None:
    instructions._child(child, 60, workdir)  # what callgrind counts; an API drift would fail here, not in a bench


def test_callgrind_summary_line_is_read() -> None:
    stderr = "==123== Events    : Ir\n==123== Collected : 2978781127\n==123==\n==123== I   refs:      2,978,781,127\n"
    found = instructions._REFS.search(stderr)
    assert found is not None and int(found.group(1).replace(",", "")) == 2_978_781_127


def test_too_few_lines_are_refused() -> None:
    with pytest.raises(SystemExit, match="must exceed"):
        instructions.measure(lines=100, base=100)


def test_report_names_each_stage() -> None:
    result = {"lines": 6000, "base": 1000, "seed": 1, "stages": {
        "parse_enrich": {"instructions_per_event": 62_289}, "detection": {"instructions_per_event": 59_845}}}
    text = instructions.markdown(result)
    assert "| parse_enrich | 62,289 |" in text and "| detection | 59,845 |" in text
