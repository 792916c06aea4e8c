"""The SigmaHQ community rules (../shared/data/sigma): loaded, evaluated on real logs, through the CLI too."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from soc.detect.engine import Detector
from soc.detect.loader import BUILTIN_RULES, ecs_pipeline, load_rules
from soc.parsers import parse
from tests.shared_data import LOGHUB as SHARED_LOGHUB
from tests.shared_data import SIGMA as SHARED_SIGMA
from tests.shared_data import require

SIGMA = require(SHARED_SIGMA)
LOGHUB = require(SHARED_LOGHUB)
PATH_TRAVERSAL = "7745c2ea-24a5-4290-b680-04359cb84b35"  # SigmaHQ web_path_traversal_exploitation_attempt


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "portal.cli", *args], capture_output=True, text=True, timeout=300,
                          env={"PATH": os.environ["PATH"], "YUNSHU_HOME": "/nonexistent-not-needed"})


def test_at_least_95_percent_load_and_every_failure_says_why() -> None:
    for pipeline in (None, ecs_pipeline()):
        ruleset = load_rules([SIGMA], pipeline)
        assert ruleset.total >= 400
        assert ruleset.loaded / ruleset.total >= 0.95, [e.reason for e in ruleset.errors][:10]
        assert all(e.reason.strip() and e.path.endswith(".yml") for e in ruleset.errors)


def test_real_logs_through_community_and_own_rules() -> None:
    ruleset = load_rules([SIGMA], ecs_pipeline())
    own = load_rules([BUILTIN_RULES])
    ruleset.rules += own.rules
    ruleset.correlations += own.correlations
    detector = Detector(ruleset)
    fired: dict[str, int] = {}
    for name in ("Linux_2k.log", "Apache_2k.log"):
        for line in (LOGHUB / name).read_text(encoding="utf-8", errors="replace").splitlines():
            matched, correlated = detector.process(parse(line))
            for item in [*matched, *(hit.correlation for hit in correlated)]:
                fired[item.name or item.id] = fired.get(item.name or item.id, 0) + 1
    assert detector.evaluated == 4000
    # Linux_2k holds bursts of sshd PAM failures from single addresses
    assert fired.get("yunshu_ssh_brute_force", 0) > 0
    attack = '203.0.113.9 - - [20/Nov/2026:10:00:01 +0800] "GET /dl?f=../../../etc/passwd HTTP/1.1" 200 1 "-" "curl"'
    matched, _ = detector.process(parse(attack))
    assert PATH_TRAVERSAL in {r.id for r in matched}  # SigmaHQ's cs-uri-query mapped to url.query
    # an auditd EXECVE record is a Linux process creation: SigmaHQ's CommandLine rules reach it
    execve = ('type=EXECVE msg=audit(1700000000.123:456): argc=4 a0="xmrig" a1="-o" a2="pool.minexmr.com:4444" '
              'a3="--donate-level=0"')
    matched, _ = detector.process(parse(execve))
    assert "Linux Crypto Mining Indicators" in {r.title for r in matched}


def test_cli_check_and_match(tmp_path: Path) -> None:
    check = _cli("soc", "rules", "check", str(SIGMA))
    assert "of 407 rules" in check.stderr or "rules (" in check.stderr, check.stderr
    reported = [json.loads(line) for line in check.stdout.splitlines()]
    assert all({"path", "title", "reason"} <= set(r) for r in reported)
    assert check.returncode == (1 if reported else 0)

    events = tmp_path / "events.jsonl"
    events.write_text("\n".join([
        json.dumps({"cs-uri-query": "file=../../../etc/passwd", "cs-method": "GET"}),
        json.dumps({"cs-uri-query": "page=2"}),
        "",
        json.dumps({"nested": {"cs-uri-query": "x"}}),
        json.dumps({"cs-uri-query": "a=..%252f..%252f..%252fetc%252fshadow"}),
    ]) + "\n")
    match = _cli("soc", "rules", "match", "--rules", str(SIGMA / "web"), "--events", str(events))
    assert match.returncode == 0, match.stderr
    hits = [json.loads(line) for line in match.stdout.splitlines()]
    traversal = [h for h in hits if h["rule_id"] == PATH_TRAVERSAL]
    assert [h["event_index"] for h in traversal] == [0, 3]
    assert traversal[0] == {"rule_id": PATH_TRAVERSAL, "title": "Path Traversal Exploitation Attempts",
                            "level": "medium", "event_index": 0}

    events.write_text('{"ok": 1}\nnot json\n')
    bad = _cli("soc", "rules", "match", "--rules", str(BUILTIN_RULES), "--events", str(events))
    assert bad.returncode == 1 and "events.jsonl:2: not JSON" in bad.stderr
    missing = _cli("soc", "rules", "check", str(tmp_path / "nope"))
    assert missing.returncode == 2 and "no such rule file or folder" in missing.stderr


def test_nested_paths_in_cli_events(tmp_path: Path) -> None:
    rule = tmp_path / "r.yml"
    rule.write_text("title: nested\nid: 2f1e0a47-5b1c-4c67-9d0e-3a8c2b1d4e5f\nlogsource: {product: test}\n"
                    "detection: {sel: {source.ip|cidr: 198.18.0.0/15, user.name: root}, condition: sel}\n"
                    "level: low\n")
    events = tmp_path / "e.jsonl"
    events.write_text(json.dumps({"source": {"ip": "198.19.1.1"}, "user": {"name": "root"}}) + "\n"
                      + json.dumps({"source": {"ip": "10.0.0.1"}, "user": {"name": "root"}}) + "\n")
    out = _cli("soc", "rules", "match", "--rules", str(rule), "--events", str(events))
    assert [json.loads(line)["event_index"] for line in out.stdout.splitlines()] == [0]


def test_sql_retro_hunt_agrees_with_live_matching(tmp_path: Path) -> None:
    """Every SigmaHQ rule and every own rule, as SQL on the embedded store, finds exactly the events the in-memory
    matcher finds, over real Loghub logs and the own rules' samples."""
    from soc.detect.samples import load_samples
    from soc.ecs import event_id
    from soc.store.base import SearchQuery
    from soc.store.sqlite import SQLiteStore

    docs = [(event_id(name, str(i)), parse(line)) for name in ("Linux_2k.log", "Apache_2k.log")
            for i, line in enumerate((LOGHUB / name).read_text(encoding="utf-8", errors="replace").splitlines())]
    for path in sorted((BUILTIN_RULES.parent / "rule_samples").glob("*.yml")):
        for case in load_samples(path).cases:
            docs += [(event_id(path.name + case.name, str(i)), e) for i, e in enumerate(case.events())]
    store = SQLiteStore(tmp_path / "events.db")
    assert store.write(docs).created == len(docs)
    rules = load_rules([SIGMA], ecs_pipeline()).rules + load_rules([BUILTIN_RULES]).rules
    matched_somewhere = 0
    for rule in rules:
        assert rule.sigma is not None
        expected = {doc_id for doc_id, event in docs if rule.predicate(event)}
        found = {doc_id for doc_id, _ in store.hunt(rule.sigma, SearchQuery(limit=len(docs))).hits}
        assert found == expected, f"{rule.path}: SQL found {len(found)}, in memory {len(expected)}"
        matched_somewhere += bool(expected)
    store.close()
    assert matched_somewhere >= 14  # not a comparison of empty sets: the own rules all match their samples


# (detection, events): edge cases where the SQL once meant something else than the matcher
_SQL_EDGES = [
    ("  sel:\n    process.command_line|contains: wget\n  filter:\n    user.name: null\n"
     "  condition: sel and not filter",
     [{"process": {"command_line": "wget http://x/a.sh"}, "user": {"name": "alice"}},
      {"process": {"command_line": "wget http://x/a.sh"}, "user": {"name": None}},
      {"process": {"command_line": "wget http://x/a.sh"}, "user": {"name": []}},
      {"process": {"command_line": "wget http://x/a.sh"}, "user": {"name": ""}},
      {"process": {"command_line": "wget http://x/a.sh"}}]),
    ("  sel:\n    process.name: sudo\n  benign:\n    - backup.sh\n  condition: sel and not benign",
     [{"process": {"name": "sudo"}, "message": "sudo run"},
      {"process": {"name": "sudo"}, "event": {"original": "sudo run"}},
      {"process": {"name": "sudo"}},
      {"process": {"name": "sudo"}, "message": "sudo backup.sh"}]),
    ("  sel:\n    user|contains: a\n  condition: sel",
     [{"user": {"a": "a"}}, {"user": "bab"}, {"user": ["x", "yay"]}]),
    ("  sel:\n    user: '*'\n  condition: sel", [{"user": {"a": 1}}, {"user": "z"}]),
    ("  sel:\n    ok: 'true'\n  condition: sel", [{"ok": True}, {"ok": 1}, {"ok": "TRUE"}, {"ok": False}]),
    ("  sel:\n    ok: true\n  condition: sel", [{"ok": True}, {"ok": 1}, {"ok": "TRUE"}, {"ok": "false"}]),
    ("  sel:\n    n|gt: 0\n  condition: sel", [{"n": True}, {"n": 2}, {"n": "3"}]),
    ("  sel:\n    cmd|contains: ПАРОЛЬ\n  condition: sel", [{"cmd": "мой пароль"}, {"cmd": "МОЙ ПАРОЛЬ"}]),
    ("  sel:\n    - ÉCOLE\n  condition: sel", [{"message": "école ouverte"}, {"message": "ecole"}]),
    ("  sel:\n    source.ip|cidr: 10.0.0.0/8\n  condition: sel",
     [{"source": {"ip": "::ffff:10.1.2.4"}}, {"source": {"ip": "10.1.2.4"}}, {"source": {"ip": "::ffff:11.0.0.1"}}]),
    ("  sel:\n    source.ip|cidr: '::ffff:0:0/96'\n  condition: sel",
     [{"source": {"ip": "10.1.2.4"}}, {"source": {"ip": "2001:db8::1"}}]),
]


# documents whose shape a nested JSON path does not follow: lists of objects, keys spelled with dots
_SHAPES = [
    {"process": [{"name": "sudo", "args": ["-i"]}, {"name": "bash"}], "source": {"ip": "10.1.2.3"}},
    {"process.name": "sudo", "source.ip": "10.1.2.3"},
    {"process": {"name": "bash"}, "process.name": "sudo"},
    {"process": {"parent.name": "sudo"}, "user": [{"name": "root"}, {"name": None}]},
    {"a": {"b": [{"c": "sudo"}, {"c": {"d": "x"}}]}, "source": [{"ip": "192.0.2.9"}, {"ip": "10.9.9.9"}]},
    {"a.b": {"c": "sudo"}, "user": []},
    {"a": {"b.c": "sudo"}, "user": {"name": "root", "target": {"name": "root"}}},
    {"process": {"name": "sudo"}, "user": {"name": "root"}},
    {"process": "sudo", "user": [{"name": []}]},
]
_SQL_EDGES += [(detection, _SHAPES) for detection in [
    "  sel:\n    process.name: sudo\n  condition: sel",
    "  sel:\n    process.name|contains: ud\n  condition: sel",
    "  sel:\n    process.parent.name: sudo\n  condition: sel",
    "  sel:\n    a.b.c: sudo\n  condition: sel",
    "  sel:\n    a.b.c.d: x\n  condition: sel",
    "  sel:\n    source.ip|cidr: 10.0.0.0/8\n  condition: sel",
    "  sel:\n    process.name|exists: true\n  condition: sel",
    "  sel:\n    process.name|exists: false\n  condition: sel",
    "  sel:\n    user.name: null\n  condition: sel",
    "  sel:\n    process.args: '-i'\n  condition: sel",
    "  sel:\n    user.name|fieldref: user.target.name\n  condition: sel",
    "  sel:\n    a.b.c|fieldref: process.name\n  condition: sel",
    "  sel:\n    process.name: sudo\n  filter:\n    source.ip|cidr: 10.0.0.0/8\n  condition: sel and not filter",
    "  sel1:\n    process.name:\n" + "".join(f"      - v{i}\n" for i in range(300)) + "      - sudo\n"
    "  sel2:\n    a.b.c|contains:\n" + "".join(f"      - w{i}\n" for i in range(300)) + "      - ud\n"
    "  condition: 1 of sel*",
]]
_SQL_EDGES.append(("  sel:\n    a\"b.c: x\n  condition: sel", [{'a"b': {"c": "x"}}, {"a": {"b.c": "x"}}, {"x": 1}]))


@pytest.mark.parametrize(("detection", "events"), _SQL_EDGES)
def test_sql_retro_hunt_agrees_on_edge_cases(tmp_path: Path, detection: str, events: list[dict]) -> None:
    """null against present values, ``not`` over keywords of events without a raw line, object-valued fields,
    JSON booleans and case in other scripts: the SQL finds exactly the events the matcher finds."""
    from soc.detect.loader import load_texts
    from soc.store.base import SearchQuery
    from soc.store.sqlite import SQLiteStore

    rule = load_texts([("edge.yml", f"title: edge\nlogsource: {{product: test}}\ndetection:\n{detection}\n")]).rules[0]
    docs = [(f"id{i}", {"@timestamp": "2026-11-20T00:00:00.000Z", **event}) for i, event in enumerate(events)]
    store = SQLiteStore(tmp_path / "events.db")
    try:
        assert store.write(docs).created == len(docs)
        assert rule.sigma is not None
        expected = {doc_id for doc_id, event in docs if rule.predicate(event)}
        found = {doc_id for doc_id, _ in store.hunt(rule.sigma, SearchQuery()).hits}
        assert found == expected
    finally:
        store.close()


@pytest.mark.parametrize(("literal_engine", "hyperscan_calls"),
                         [("hyperscan", "c-api"), ("hyperscan", "wheel"), ("ahocorasick", None)])
def test_indexed_candidates_never_drop_a_matching_rule(literal_engine: str, hyperscan_calls: str | None) -> None:
    """The log-source buckets, anchors and literal gates only skip rules that cannot match: on real logs and on every
    own rule's samples, the detector matches exactly the rules that evaluating all of them in turn finds."""
    from soc.detect.engine import compatible, dataset_logsources
    from soc.detect.samples import load_samples

    ruleset = load_rules([SIGMA / d for d in ("linux", "web", "network")], ecs_pipeline())
    ruleset.rules += load_rules([BUILTIN_RULES]).rules
    detector = Detector(ruleset, literal_engine=literal_engine, hyperscan_calls=hyperscan_calls)
    sources = dataset_logsources()
    events = [parse(line) for name in ("Linux_2k.log", "Apache_2k.log")
              for line in (LOGHUB / name).read_text(encoding="utf-8", errors="replace").splitlines()]
    for path in sorted((BUILTIN_RULES.parent / "rule_samples").glob("*.yml")):
        events += [event for case in load_samples(path).cases for event in case.events()]
    attacks = ['203.0.113.9 - - [20/Nov/2026:10:00:01 +0800] "GET /dl?f=../../../etc/passwd HTTP/1.1" 200 1 "-" "curl"',
               '203.0.113.9 - - [20/Nov/2026:10:00:02 +0800] "GET /q?id=1%27%20UNION%20SELECT%201 HTTP/1.1" 500 1 '
               '"-" "sqlmap/1.7"', '198.51.100.7 - - [20/Nov/2026:10:00:03 +0800] "GET /<script>alert(1)</script> '
               'HTTP/1.1" 404 1 "-" "Mozilla/5.0"']
    events += [parse(line) for line in attacks]
    fired = 0
    for event in events:
        dataset = event.get("event", {}).get("dataset")
        known = sources.get(dataset) if isinstance(dataset, str) else None
        applicable = [r for r in ruleset.rules if known is None or compatible(r.logsource, known)]
        everything = [r.id for r in applicable if r.predicate(event)]
        assert [r.id for r in detector.match(event)] == everything, event.get("message")
        fired += bool(everything)
    assert fired >= 50  # the comparison saw rules fire, not only silence


def test_sql_retro_hunt_keeps_its_matcher_predicates_while_other_hunts_translate(tmp_path: Path) -> None:
    """The matcher's predicates a hunt's SQL calls stay registered however many other translations come and go."""
    import gc

    from soc.detect.loader import load_texts
    from soc.store.sigma_sql import register_functions, rule_sql
    from soc.store.sqlite import SQLiteStore

    rule = load_texts([("r.yml", "title: r\nlogsource: {product: test}\ndetection:\n  sel:\n    process.name: sudo\n"
                                 "  condition: sel\n")]).rules[0]
    assert rule.sigma is not None
    store = SQLiteStore(tmp_path / "events.db")
    try:
        store.write([("d1", {"@timestamp": "2026-11-20T00:00:00.000Z", "process": [{"name": "sudo"}]})])
        keep: list[object] = []
        condition, params = rule_sql(rule.sigma, keep)
        for _ in range(5000):  # others' translations, dropped at once
            rule_sql(rule.sigma, [])
        gc.collect()
        with sqlite3.connect(tmp_path / "events.db") as db:
            register_functions(db)
            assert db.execute(f"SELECT e.id FROM events e WHERE {condition}", params).fetchall() == [("d1",)]
    finally:
        store.close()
