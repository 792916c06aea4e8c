"""The instruction-count benchmark's parts that run without valgrind: the counted programs and the report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import instructions


@pytest.fixture(scope="module")
def tags(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return instructions._tags(tmp_path_factory.mktemp("instructions"))


def test_the_register_index_goes_to_the_children_as_json(tags: Path) -> None:
    data = json.loads(tags.read_text(encoding="utf-8"))
    assert data and all(len(tag) == 4 and isinstance(tag[2], int) for tag in data.values())


@pytest.mark.parametrize("stage", instructions.STAGES)
def test_each_counted_program_runs(stage: str, tags: Path) -> None:
    instructions._child(stage, 50, tags)  # what callgrind counts; an API drift would fail here, not in a bench run


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
