"""The benchmark corpus: deterministic, and every line parses into the dataset of its kind (no speed checks here)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from bench.corpus import DATASETS, KINDS, generate, load_register_hosts, write_corpus
from soc.parsers import parse

N = 600


def test_same_seed_same_lines_and_prefix_stable() -> None:
    first = list(generate(N, seed=7))
    assert first == list(generate(N, seed=7))
    assert list(generate(100, seed=7)) == first[:100]  # a shorter corpus is a prefix of a longer one
    assert [line for _, line in generate(N, seed=8)] != [line for _, line in first]


def test_lines_parse_to_their_datasets_with_register_hosts() -> None:
    hosts = load_register_hosts()
    names = {h.name for h in hosts}
    addresses = {a for h in hosts for a in (h.ipv4, h.ipv6) if a}
    kinds: Counter[str] = Counter()
    for kind, line in generate(N):
        kinds[kind] += 1
        event = parse(line, "auto")
        assert event["event"]["dataset"] == DATASETS[kind], line
        if kind == "nginx":
            assert event["http"]["response"]["status_code"] >= 200
            continue
        host = event["host"]["name"]
        assert host.split(".", 1)[0] in names or host in addresses, line  # so register enrichment hits
        if kind == "firewall":
            assert event["source"]["ip"] and event["destination"]["ip"] and event["network"]["transport"], line
        else:
            assert event["event"]["action"].startswith("ssh_") and event["source"]["ip"], line
    assert set(kinds) == set(KINDS) and min(kinds.values()) > N // 5


def test_write_corpus_counts_lines(tmp_path: Path) -> None:
    path = tmp_path / "corpus.log"
    kinds = write_corpus(path, 250, seed=3)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == sum(kinds.values()) == 250
    assert lines == [line for _, line in generate(250, seed=3)]
