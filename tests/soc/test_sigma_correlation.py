"""Sigma correlation rules: windows at their boundaries, grouping, aliases, chaining and bounded state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from soc.detect.correlation import Correlator, event_time
from soc.detect.engine import Detector
from soc.detect.loader import load_texts
from soc.ecs import utc_seconds

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


def _stamp(moment: datetime, zulu: bool) -> str:
    """``2026-11-20T02:00:00.500000+00:00``, or as the parsers write it, ``2026-11-20T02:00:00.500Z``."""
    return moment.isoformat(timespec="milliseconds")[:-6] + "Z" if zulu else moment.isoformat()


def _run(detector: Detector, events: list[tuple[float, dict[str, Any]]], zulu: bool = False,
         ) -> list[tuple[int, dict, int]]:
    """Feed (seconds after T0, fields) events; returns (event index, group, count) of every firing."""
    fired = []
    for i, (seconds, fields) in enumerate(events):
        event = {"@timestamp": _stamp(T0 + timedelta(seconds=seconds), zulu), **fields}
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
@pytest.mark.parametrize("zulu", [False, True])
def test_event_count_window_boundaries(times: list[float], fires_at: int | None, zulu: bool) -> None:
    fired = _run(_detector(EVENT_COUNT), [(t, _fail()) for t in times], zulu)
    assert [i for i, _, _ in fired] == ([] if fires_at is None else [fires_at])


@given(moment=st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(9999, 12, 30)),
       digits=st.sampled_from([0, 3, 6]))
def test_utc_seconds_equals_fromisoformat(moment: datetime, digits: int) -> None:
    text = moment.strftime("%Y-%m-%dT%H:%M:%S") + (f".{moment.microsecond:06d}"[:digits + 1] if digits else "") + "Z"
    expected = datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    assert utc_seconds(text) == expected  # the same float, so windows end exactly where they did
    assert event_time({"@timestamp": text}) == expected


_PARSERS_FORM = "2024-02-29T23:59:59.999Z"


@given(base=st.sampled_from([_PARSERS_FORM, "2023-02-28T00:00:00Z", "0001-01-01T00:00:00.000001Z",
                             "2400-02-29T12:00:00.123456Z", "9999-12-31T23:59:59.999Z", "1900-02-28T01:02:03Z"]),
       edits=st.lists(st.tuples(st.integers(0, 26), st.sampled_from("0123456789:-.TZ x\u0660")), max_size=3))
@example(base=_PARSERS_FORM, edits=[(9, "0")])  # day 20 → 20, then 29 → 2023: not a leap year below
@example(base="2023-02-28T00:00:00Z", edits=[(9, "9")])  # 2023-02-29
@example(base="1900-02-28T01:02:03Z", edits=[(9, "9")])  # 1900 is not a leap year
@example(base=_PARSERS_FORM, edits=[(11, "2"), (12, "4")])  # hour 24
@example(base=_PARSERS_FORM, edits=[(5, "0"), (6, "0")])  # month 00
@example(base="0001-01-01T00:00:00.000001Z", edits=[(3, "0")])  # year 0000
def test_utc_seconds_reads_the_parsers_form_as_the_general_way_does(base: str, edits: list[tuple[int, str]]) -> None:
    """The digit-by-digit reading gives exactly what the general reading (hour memo, fromisoformat) gives, for
    the parsers' form and anything near it."""
    from soc.ecs import _hour_memo_seconds

    chars = list(base)
    for at, char in edits:
        if at < len(chars):
            chars[at] = char
    text = "".join(chars)
    assert utc_seconds(text) == _hour_memo_seconds(text)


@pytest.mark.parametrize("text", [
    "2026-11-20T02:00:00+08:00", "2026-11-20T02:00:00.5Z", "2026-11-20T02:00:00.1234Z", "2026-11-20T02:60:00Z",
    "2026-11-20T02:00:61Z", "2026-11-20T02:0０:00Z", "2026-13-20T02:00:00Z", "2026-11-20T02:00:00,000Z",
    "2026-11-20T02:00:00.00xZ", "2026-11-20 02:00:00.000", "not a time at all",
])
def test_utc_seconds_leaves_other_forms_to_fromisoformat(text: str) -> None:
    assert utc_seconds(text) is None
    try:
        expected = datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        expected = 0.0
    assert event_time({"@timestamp": text}) == expected


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


def test_value_count_with_events_out_of_time_order() -> None:
    # "b" arrives late with t=0: it is counted while within the window of the event at hand, and not once expired,
    # even though values arriving before it are still live
    late = [(100, _fail(user="a")), (0, _fail(user="b")), (110, _fail(user="c")), (119, _fail(user="d")),
            (131, _fail(user="e"))]
    assert [(i, c) for i, _, c in _run(_detector(VALUE_COUNT), late)] == [(3, 4)]
    late[3] = (121, _fail(user="d"))  # now "b" (t=0) is out of the window when "d" arrives; "e" makes four
    assert [(i, c) for i, _, c in _run(_detector(VALUE_COUNT), late)] == [(4, 4)]
    # a value seen again keeps its newest time, whichever order the two arrive in
    again = [(100, _fail(user="a")), (0, _fail(user="a")), (101, _fail(user="b")), (110, _fail(user="c")),
             (125, _fail(user="d"))]
    assert [(i, c) for i, _, c in _run(_detector(VALUE_COUNT), again)] == [(4, 4)]


@pytest.mark.parametrize(("condition", "fires_at"), [("lt: 2", [0, 1, 2, 3]), ("eq: 2", [2]), ("neq: 1", [2])])
def test_value_count_conditions_that_do_not_grow_with_the_count(condition: str, fires_at: list[int]) -> None:
    rule = VALUE_COUNT.replace("gte: 4", condition)  # a firing clears its window, so "lt: 2" fires every time
    events = [(0, _fail(user="a")), (10, _fail(user="a")), (20, _fail(user="b")), (30, _fail(user="c"))]
    assert [i for i, _, _ in _run(_detector(rule), events)] == fires_at


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
    assert 90 <= detector.correlator.state_size <= 100


def test_a_flood_of_new_groups_evicts_the_quiet_ones_not_an_active_one() -> None:
    """A source that keeps failing stays counted while a flood of one-off sources fills the state many times
    over (the groups whose newest event is oldest go first), and fires at the threshold."""
    many = EVENT_COUNT.replace("{gte: 3}", "{gte: 40}")
    detector = _detector(many, max_groups=50)
    events = []
    for i in range(1500):
        events.append((i * 0.01, _fail(ip=f"10.1.{i // 256}.{i % 256}")))
        if i % 25 == 0:  # every 25 one-off sources, while the state holds 50
            events.append((i * 0.01, _fail(ip="203.0.113.9")))
    fired = _run(detector, events)
    assert [(group, count) for _, group, count in fired] == [({"ip": "203.0.113.9"}, 40)]
    assert detector.correlator.state_size <= 50
    held = [key for tracker in detector.correlator.trackers for key in tracker.group_keys()]
    assert ("10.1.5.219",) in held and ("10.1.0.0",) not in held  # the newest kept, the oldest dropped


def test_unsupported_correlation_types_are_named() -> None:
    ruleset = load_texts([("base.yml", BASE), ("c.yml", """
title: sum
correlation: {type: value_sum, rules: [failed], group-by: [ip], timespan: 1m, condition: {gte: 3, field: n}}
""")])
    assert [e.reason for e in ruleset.errors] == [
        "correlation type value_sum is not supported (event_count, value_count, temporal, temporal_ordered are)"]


SUCCESS = {"outcome": "success", "ip": "1.1.1.1"}


@pytest.mark.parametrize(("rule", "events", "fired"), [
    # a late event older than the newest minus the timespan does not count
    (EVENT_COUNT, [(1000, _fail()), (1001, _fail()), (0, _fail())], []),
    # a late event within the window of the newest does, and the match spans the window's times
    (EVENT_COUNT, [(0, _fail()), (50, _fail()), (30, _fail())], [(2, 3)]),
    (TEMPORAL, [(1000, _fail()), (0, SUCCESS)], []),
    (TEMPORAL, [(100, _fail()), (0, _fail()), (120, SUCCESS)], [(2, 2)]),  # the late failure keeps t=100
    (ORDERED, [(30, _fail()), (0, SUCCESS)], []),  # success happened first, though it arrived second
    (ORDERED, [(0, _fail()), (30, SUCCESS)], [(1, 2)]),
])
def test_windows_run_on_event_time_with_late_events(rule: str, events: list[tuple[float, dict[str, Any]]],
                                                     fired: list[tuple[int, int]]) -> None:
    assert [(i, count) for i, _, count in _run(_detector(rule), events)] == fired


def test_a_late_event_in_the_window_sets_first_seen() -> None:
    detector = _detector(EVENT_COUNT)
    hits = []
    for seconds in (10, 50, 0):
        event = {"@timestamp": _stamp(T0 + timedelta(seconds=seconds), True), **_fail()}
        hits += detector.process(event)[1]
    assert [(h.first_seen - T0.timestamp(), h.last_seen - T0.timestamp()) for h in hits] == [(0.0, 50.0)]


def test_events_without_the_group_by_or_counted_field_are_not_counted() -> None:
    assert _run(_detector(EVENT_COUNT), [(i, {"outcome": "failure"}) for i in range(5)]) == []
    two_fields = EVENT_COUNT.replace("group-by: [ip]", "group-by: [ip, user]")
    assert _run(_detector(two_fields), [(i, {"outcome": "failure", "ip": "1.1.1.1"}) for i in range(5)]) == []
    nulls = [(0, _fail(user="a")), (1, _fail(user="b")), (2, _fail(user="c"))]
    nulls += [(3, {**_fail(), "user": None}), (4, {**_fail(), "user": {"name": "x"}})]
    assert _run(_detector(VALUE_COUNT), nulls) == []  # three values: null and an object are none


def test_a_time_without_a_zone_is_utc_whatever_the_host_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    monkeypatch.setenv("TZ", "Asia/Shanghai")
    time.tzset()
    try:
        detector = _detector(EVENT_COUNT)
        stamps = ["2026-11-20T02:00:00.250000", "2026-11-20T02:00:10Z", "2026-11-20T02:00:20Z"]
        fired = [hit for stamp in stamps for hit in detector.process({"@timestamp": stamp, **_fail()})[1]]
        assert [h.count for h in fired] == [3]
    finally:
        monkeypatch.undo()
        time.tzset()


def test_correlations_load_and_fire_under_a_field_mapping_pipeline() -> None:
    """Rule folders of the user's are loaded through the ECS pipeline: their correlations must resolve their rules
    (and see their group-by fields renamed)."""
    from soc.detect.loader import ecs_pipeline

    web = """
title: scan request
name: scan
logsource: {category: webserver}
detection: {sel: {sc-status: 404}, condition: sel}
---
title: many 404s from one client
correlation: {type: event_count, rules: [scan], group-by: [c-ip], timespan: 1m, condition: {gte: 3}}
level: high
"""
    ruleset = load_texts([("web.yml", web)], ecs_pipeline())
    assert not ruleset.errors, ruleset.errors
    assert [c.group_by for c in ruleset.correlations] == [("source.ip",)]
    detector = Detector(ruleset, logsources={}, correlator=Correlator(ruleset.correlations))
    fired = []
    for seconds in range(3):
        event = {"@timestamp": _stamp(T0 + timedelta(seconds=seconds), True), "source": {"ip": "203.0.113.9"},
                 "http": {"response": {"status_code": 404}}}
        fired += detector.process(event)[1]
    assert [(h.group, h.count) for h in fired] == [({"source.ip": "203.0.113.9"}, 3)]


def test_a_rule_titled_like_another_rules_name_does_not_feed_its_correlation() -> None:
    rules = BASE + """---
title: failed
logsource: {product: test}
detection: {sel: {outcome: other}, condition: sel}
"""
    ruleset = load_texts([("base.yml", rules), ("corr.yml", EVENT_COUNT)])
    detector = Detector(ruleset, logsources={}, correlator=Correlator(ruleset.correlations))
    assert _run(detector, [(i, {"outcome": "other", "ip": "1.1.1.1"}) for i in range(3)]) == []
    assert [count for _, _, count in _run(detector, [(10 + i, _fail()) for i in range(3)])] == [3]


def test_a_match_names_the_departments_of_the_events_it_counted() -> None:
    detector = _detector(EVENT_COUNT)
    hits = []
    for seconds, department in [(0, "GAJ"), (1, "GAJ"), (2, "RSJ"), (10, "RSJ"), (11, "RSJ"), (12, "RSJ")]:
        event = {"@timestamp": _stamp(T0 + timedelta(seconds=seconds), True), **_fail(),
                 "gov": {"department": department}}
        hits += detector.process(event)[1]
    assert [h.departments for h in hits] == [("GAJ", "RSJ"), ("RSJ",)]


def test_ordered_progress_survives_a_late_first_step() -> None:
    three = """
title: failure, success, failure again
correlation: {type: temporal_ordered, rules: [failed, accepted, failed], group-by: [ip], timespan: 1m}
"""
    events = [(100, _fail()), (110, SUCCESS), (50, _fail()), (120, _fail())]
    assert [(i, count) for i, _, count in _run(_detector(three), events)] == [(3, 3)]
