"""The detector's literal gates: Hyperscan and the Aho-Corasick automaton find the same rule groups, on any text,
and a gate's memo of field values never changes what it finds."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from soc.detect import engine
from soc.detect.engine import KEYWORDS, Detector, _Gate
from soc.detect.loader import load_texts

# needles as literal_gate makes them (lowercased, 2 characters or more), with what would be syntax to a regex
# engine, bytes a C string would cut at, non-ASCII text and a lone surrogate
NEEDLES = ["../", "union select", "a.b", "(){:;};", "x\x00y", "\\x41", "身份证", "é/", "[*]", "\ud800z", "zz", "zzz"]
ALPHABET = st.sampled_from([*"abxyz./(){};:*[]\\é身份证 \x00\ud800", "union", "select", "\\x41"])


def _gate(engine_name: str, target: str = "url.original") -> _Gate:
    needles: dict[str, Any] = {needle: (f"rule-{i}",) for i, needle in enumerate(NEEDLES)}
    return _Gate(target, None, needles, engine_name)


@given(text=st.lists(ALPHABET, max_size=40).map("".join))
def test_hyperscan_and_automaton_find_the_same_groups(text: str) -> None:
    expected = {(f"rule-{i}",) for i, needle in enumerate(NEEDLES) if needle in text}
    for name in ("hyperscan", "ahocorasick"):
        found = _gate(name).search(text)
        assert len(found) == len(set(found)), "each group once"
        assert set(found) == expected, name


@pytest.mark.parametrize("engine_name", ["hyperscan", "ahocorasick"])
def test_memo_of_repeating_values_and_its_end_when_values_keep_changing(
        engine_name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "MEMO_TRIAL", 50)
    gate = _gate(engine_name)
    for _ in range(3):
        for value in ("GET /../x", "GET /", "Union Select 1"):
            assert set(gate.remembered(value)) == set(gate.search(value.lower()))
    assert gate.memo is not None and gate.hits == 6 and gate.misses == 3
    for i in range(60):  # every value new: the memo is dropped once misses pass the trial and outnumber hits
        value = f"/{i}/../zzz"
        assert gate.remembered(value) == gate.search(value.lower()) == (("rule-0",), ("rule-10",), ("rule-11",))
    assert gate.memo is None
    assert _gate(engine_name, KEYWORDS).memo is None  # the raw line is never remembered


def test_memo_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "MEMO_SIZE", 10)
    gate = _gate("hyperscan")
    for i in range(25):
        gate.remembered(f"value {i % 12}")  # hits keep the memo on; it is cleared whenever it fills up
        assert gate.memo is not None and len(gate.memo) <= 10


def test_unknown_literal_engine_is_named() -> None:
    rules = load_texts([("r.yml", "title: t\nlogsource: {product: test}\ndetection: {s: {a: b}, condition: s}\n")])
    with pytest.raises(ValueError, match=r"literal_engine 'pcre'.*hyperscan, ahocorasick"):
        Detector(rules, literal_engine="pcre")


def test_detector_takes_any_sequence_of_rules_and_any_mapping_of_log_sources() -> None:
    """The detector is an extension type when compiled; its constructor still takes what it took as a plain class
    (a tuple of rules, an OrderedDict of log sources, a str subclass naming the literal engine)."""
    from collections import OrderedDict

    from soc.detect.loader import BUILTIN_RULES, load_rules

    class Name(str):
        pass

    ruleset = load_rules([BUILTIN_RULES])
    ruleset.rules = tuple(ruleset.rules)
    logsources = OrderedDict(engine.dataset_logsources())
    detector = Detector(ruleset, logsources=logsources, literal_engine=Name("ahocorasick"))
    event = {"event": {"dataset": "system.auth", "original": "sshd: Failed password for root"},
             "message": "Failed password for root", "process": {"name": "sshd"}}
    assert detector.match(event) == Detector(load_rules([BUILTIN_RULES])).match(event)
    assert detector.literal_engine == "ahocorasick" and type(detector.literal_engine) is str
