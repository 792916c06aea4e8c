"""The detector's literal gates: Hyperscan (through its C API and through the wheel's binding) and the Aho-Corasick
automaton find the same rule groups, on any text, and a gate's memo of field values never changes what it finds."""

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


# (engine, how Hyperscan is called): every way a gate can search
ENGINES = [("hyperscan", "c-api"), ("hyperscan", "wheel"), ("ahocorasick", None)]


def _gate(engine_name: str, target: str = "url.original", calls: str | None = None) -> _Gate:
    needles: dict[str, Any] = {needle: (f"rule-{i}",) for i, needle in enumerate(NEEDLES)}
    return _Gate(target, None, needles, engine_name, calls)


def test_hyperscan_c_api_is_built_where_its_header_is_installed() -> None:
    """CI installs libhyperscan-dev (dev.sh): there the gates must call Hyperscan's C API, not the wheel."""
    from soc import native

    if native.header_of("soc.detect.hs_literals") is not None:
        assert engine.Literals is not None, "soc.detect.hs_literals not built: python -m soc.native_build"
        assert _gate("hyperscan").literals is not None


@given(text=st.lists(ALPHABET, max_size=40).map("".join))
def test_hyperscan_and_automaton_find_the_same_groups(text: str) -> None:
    expected = {(f"rule-{i}",) for i, needle in enumerate(NEEDLES) if needle in text}
    for name, calls in ENGINES:
        found = _gate(name, calls=calls).search(text)
        assert len(found) == len(set(found)), "each group once"
        assert set(found) == expected, (name, calls)


RAW_ALPHABET = st.sampled_from([*"abxyzABXYZ./(){};:*[]\\éÉ身份证 \x00\ud800ΣσςİK", "UNION", "Select", "\\X41"])


@given(text=st.lists(RAW_ALPHABET, max_size=40).map("".join))
def test_raw_text_is_searched_as_its_lowercase(text: str) -> None:
    """search_raw scans ASCII text caseless as it stands (the C API), anything else lowercased: the same groups as
    a search of the lowercased text, in every engine."""
    for name, calls in ENGINES:
        gate = _gate(name, calls=calls)
        assert gate.search_raw(text) == gate.search(text.lower()), (name, calls)


def test_c_api_and_wheel_report_in_the_same_order() -> None:
    text = "get /../zzz?q=union select x\x00y 身份证 é/[*] \\x41 (){:;};"
    assert _gate("hyperscan", calls="c-api").search(text) == _gate("hyperscan", calls="wheel").search(text)
    assert len(_gate("hyperscan", calls="c-api").search(text)) >= 8


def test_c_api_literals_refuse_mismatched_values() -> None:
    from soc.detect.hs_literals import Literals

    with pytest.raises(ValueError, match="as many values as literals"):
        Literals(["a", "b"], [1])
    with pytest.raises(ValueError, match="at least one"):
        Literals([], [])


def test_c_api_literals_from_two_threads() -> None:
    """One database's scratch and found list are shared: scans from several threads still each get their own
    result."""
    import threading

    gate = _gate("hyperscan", calls="c-api")
    texts = [f"{i} ../ zz" if i % 2 else f"{i} union select" for i in range(2000)]
    errors: list[str] = []

    def scan() -> None:
        for text in texts:
            found = set(gate.search(text))
            expected = {(f"rule-{i}",) for i, needle in enumerate(NEEDLES) if needle in text}
            if found != expected:
                errors.append(text)

    threads = [threading.Thread(target=scan) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_unknown_hyperscan_calls_are_named() -> None:
    rules = load_texts([("r.yml", "title: t\nlogsource: {product: test}\ndetection: {s: {a: b}, condition: s}\n")])
    with pytest.raises(ValueError, match=r"hyperscan_calls 'ctypes'.*c-api, wheel"):
        Detector(rules, hyperscan_calls="ctypes")


@pytest.mark.parametrize(("engine_name", "calls"), ENGINES)
def test_memo_of_repeating_values_and_its_end_when_values_keep_changing(
        engine_name: str, calls: str | None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "MEMO_TRIAL", 50)
    gate = _gate(engine_name, calls=calls)
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
