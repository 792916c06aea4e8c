"""Sigma correlation rules: windows at their boundaries, grouping, aliases, chaining and bounded state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from soc.detect.correlation import Correlator
from soc.detect.engine import Detector
from soc.detect.loader import load_texts

BASE = """
title: failed login
name: failed
logsource: {product: test}
detection: {sel: {outcome: failure}, condition: sel}
---
title: accepted login
name: accepted
logsource: {product: test}
detection: {sel: {outcome: success}, condition: sel}
"""
T0 = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)


def _detector(correlation: str, max_groups: int = 50_000) -> Detector:
    ruleset = load_texts([("base.yml", BASE), ("corr.yml", correlation)])
    assert not ruleset.errors, ruleset.errors
    return Detector(ruleset, logsources={}, correlator=Correlator(ruleset.correlations, max_groups))


def _run(detector: Detector, events: list[tuple[float, dict[str, Any]]]) -> list[tuple[int, dict, int]]:
    """Feed (seconds after T0, fields) events; returns (event index, group, count) of every firing."""
    fired = []
    for i, (seconds, fields) in enumerate(events):
        event = {"@timestamp": (T0 + timedelta(seconds=seconds)).isoformat(), **fields}
        for hit in detector.process(event)[1]:
            fired.append((i, hit.group, hit.count))
    return fired


def _fail(ip: str = "1.1.1.1", user: str = "root") -> dict[str, Any]:
    return {"outcome": "failure", "ip": ip, "user": user}


EVENT_COUNT = """
title: three failures in a minute
correlation: {type: event_count, rules: [failed], group-by: [ip], timespan: 1m, condition: {gte: 3}}
level: high
"""


@pytest.mark.parametrize(("times", "fires_at"), [
    ([0, 30, 60], 2),  # the window includes an event exactly one timespan older
    ([0, 30, 60.5], None),
    ([0, 59, 61, 62], 3),  # the first event slides out, the next three are within a minute
])
def test_event_count_window_boundaries(times: list[float], fires_at: int | None) -> None:
    fired = _run(_detector(EVENT_COUNT), [(t, _fail()) for t in times])
    assert [i for i, _, _ in fired] == ([] if fires_at is None else [fires_at])


def test_event_count_groups_and_fires_once_per_burst() -> None:
    events = [(i, _fail(ip="1.1.1.1" if i % 2 else "2.2.2.2")) for i in range(8)]
    fired = _run(_detector(EVENT_COUNT), events)
    assert [(i, g) for i, g, _ in fired] == [(4, {"ip": "2.2.2.2"}), (5, {"ip": "1.1.1.1"})]
    more = _run(_detector(EVENT_COUNT), [(i, _fail()) for i in range(7)])
    assert [i for i, _, _ in more] == [2, 5]  # state cleared after each firing: one alert per three


def test_event_count_lt_condition_is_checked_as_each_event_arrives() -> None:
    rule = EVENT_COUNT.replace("gte: 3", "lt: 2")
    assert [i for i, _, _ in _run(_detector(rule), [(0, _fail()), (10, _fail())])] == [0, 1]
    rule = EVENT_COUNT.replace("gte: 3", "eq: 2")
    assert [i for i, _, _ in _run(_detector(rule), [(0, _fail()), (10, _fail()), (20, _fail())])] == [1]


VALUE_COUNT = """
title: four users from one address in two minutes
correlation:
  type: value_count
  rules: [failed]
  group-by: [ip]
  timespan: 2m
  condition: {gte: 4, field: user}
"""


def test_value_count_counts_distinct_values_within_the_window() -> None:
    same_user = [(i, _fail(user="root")) for i in range(10)]
    assert _run(_detector(VALUE_COUNT), same_user) == []
    users = [(0, _fail(user="a")), (40, _fail(user="b")), (80, _fail(user="b")), (120, _fail(user="c")),
             (121, _fail(user="d"))]
    fired = _run(_detector(VALUE_COUNT), users)
    assert fired == []  # "a" (t=0) is outside the window by the time "d" arrives at t=121
    users[-1] = (120, _fail(user="d"))
    assert [(i, c) for i, _, c in _run(_detector(VALUE_COUNT), users)] == [(4, 4)]


TEMPORAL = """
title: failure and success from one address within a minute, either order
correlation: {type: temporal, rules: [failed, accepted], group-by: [ip], timespan: 1m}
"""
ORDERED = TEMPORAL.replace("type: temporal,", "type: temporal_ordered,")


@pytest.mark.parametrize(("rule", "events", "fires"), [
    (TEMPORAL, [(0, _fail()), (60, {"outcome": "success", "ip": "1.1.1.1"})], True),
    (TEMPORAL, [(0, {"outcome": "success", "ip": "1.1.1.1"}), (30, _fail())], True),
    (TEMPORAL, [(0, _fail()), (61, {"outcome": "success", "ip": "1.1.1.1"})], False),
    (TEMPORAL, [(0, _fail()), (10, {"outcome": "success", "ip": "9.9.9.9"})], False),
    (ORDERED, [(0, _fail()), (30, {"outcome": "success", "ip": "1.1.1.1"})], True),
    (ORDERED, [(0, {"outcome": "success", "ip": "1.1.1.1"}), (30, _fail())], False),
    (ORDERED, [(0, _fail()), (61, {"outcome": "success", "ip": "1.1.1.1"})], False),
])
def test_temporal_and_ordered(rule: str, events: list[tuple[float, dict[str, Any]]], fires: bool) -> None:
    assert bool(_run(_detector(rule), events)) is fires


def test_aliases_group_different_field_names() -> None:
    rule = """
title: failure then success for the same address under two field names
correlation:
  type: temporal
  rules: [failed, accepted]
  group-by: [addr]
  timespan: 1m
  aliases:
    addr:
      failed: ip
      accepted: client
"""
    events = [(0, _fail(ip="5.5.5.5")), (10, {"outcome": "success", "client": "5.5.5.5"})]
    assert [g for _, g, _ in _run(_detector(rule), events)] == [{"addr": "5.5.5.5"}]


def test_chained_correlation_and_generate_flag() -> None:
    chained = EVENT_COUNT.replace("title: three", "name: burst\ntitle: three") + """---
title: success after a burst
correlation: {type: temporal_ordered, rules: [burst, accepted], group-by: [ip], timespan: 5m}
"""
    detector = _detector(chained)
    events = [(0, _fail()), (1, _fail()), (2, _fail()), (100, {"outcome": "success", "ip": "1.1.1.1"})]
    fired = _run(detector, events)
    assert [i for i, _, _ in fired] == [2, 3]
    by_name = {r.name: r for r in detector.rules}
    assert not by_name["failed"].generate and not by_name["accepted"].generate  # they only feed correlations


def test_state_is_bounded_per_correlation() -> None:
    detector = _detector(EVENT_COUNT, max_groups=100)
    _run(detector, [(i * 0.01, _fail(ip=f"10.0.{i // 256}.{i % 256}")) for i in range(1000)])
    assert detector.correlator.state_size == 100


def test_unsupported_correlation_types_are_named() -> None:
    ruleset = load_texts([("base.yml", BASE), ("c.yml", """
title: sum
correlation: {type: value_sum, rules: [failed], group-by: [ip], timespan: 1m, condition: {gte: 3, field: n}}
""")])
    assert [e.reason for e in ruleset.errors] == [
        "correlation type value_sum is not supported (event_count, value_count, temporal, temporal_ordered are)"]
