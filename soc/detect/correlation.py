"""Sigma correlation rules (event_count, value_count, temporal, temporal_ordered) with bounded state.

State is kept per correlation and group-by key, only for the correlation's timespan; each correlation holds at
most ``max_groups`` keys (when full, the tenth of its groups whose newest event is oldest are dropped), so memory
stays bounded under any input. A correlation fires when its condition holds on the window that ends with the current
event; its window for that group is then cleared, so one burst gives one match, not one per further event.
:meth:`Correlator.sweep` (called by the detection stage after each batch) drops the groups whose newest event is
more than a timespan older than the newest event seen, so groups that go quiet do not wait for the cap to be evicted.

Windows run on event time. A group's window ends at the newest event time it has seen: an event arriving late but
within the timespan of that counts, one older than that is not counted. temporal_ordered takes a step only at or
after the time of the step before it. An event without one of the group-by fields, or without the counted field of
a value_count, is not counted (as terms aggregations leave out missing values); a time without a zone is UTC.
"""

from __future__ import annotations

import bisect
import heapq
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

import cython

from soc.detect.compiler import MISSING, Event

if cython.compiled:  # C calls into compiled modules (their .pxd; soc.native.CIMPORTS)
    from cython.cimports.soc.detect.compiler import FieldGetter, as_list, scalar_text
    from cython.cimports.soc.ecs import utc_seconds
else:
    from soc.detect.compiler import FieldGetter, as_list, scalar_text
    from soc.ecs import utc_seconds

if TYPE_CHECKING:
    from soc.detect.loader import CompiledCorrelation, CompiledRule

_OPS = {
    "lt": lambda a, b: a < b, "lte": lambda a, b: a <= b, "gt": lambda a, b: a > b,
    "gte": lambda a, b: a >= b, "eq": lambda a, b: a == b, "neq": lambda a, b: a != b,
}


# correlation kinds, as a tracker tests them per event (an int, not a string comparison)
_EVENT_COUNT: Final = 0
_VALUE_COUNT: Final = 1
_TEMPORAL: Final = 2
_TEMPORAL_ORDERED: Final = 3
_KINDS: Final = {"event_count": _EVENT_COUNT, "value_count": _VALUE_COUNT, "temporal": _TEMPORAL,
                 "temporal_ordered": _TEMPORAL_ORDERED}

_TIMES: dict[str, float] = {}  # timestamp text in another form → epoch seconds
_MEMO_SIZE = 4096


@cython.ccall
def event_time(event: Event) -> float:
    """Epoch seconds of ``@timestamp`` (ISO-8601 or epoch number); 0.0 when the event has none."""
    if type(event) is dict:  # C-level lookups in a plain dict (every parsed or JSON event)
        value = cython.cast(dict, event).get("@timestamp", MISSING)
        if value is MISSING:
            value = cython.cast(dict, event).get("timestamp")
    else:
        value = event.get("@timestamp", event.get("timestamp"))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return value / 1000 if value > 1e11 else float(value)
        except OverflowError:  # an integer past any float: no time
            return 0.0
    if isinstance(value, str):
        seconds = utc_seconds(value)  # the parsers' form, read without a memo (milliseconds make most texts new)
        if seconds is None:
            seconds = _TIMES.get(value)
        if seconds is None:
            try:
                parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
                seconds = (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()
            except (ValueError, OverflowError):
                seconds = 0.0
            if len(_TIMES) >= _MEMO_SIZE:
                _TIMES.clear()
            _TIMES[value] = seconds
        return seconds
    return 0.0


@dataclass
class CorrelationMatch:
    """A correlation that fired: its group, how many events or values, and the window."""

    correlation: CompiledCorrelation
    group: dict[str, str | None]
    count: int
    first_seen: float
    last_seen: float
    event: Event
    departments: tuple[str, ...] = ()  # of the events counted since the group's window last fired

@cython.ccall
def _key_part(value: Any) -> str | None:
    """One group-by value as text: a list's first element; None when missing or an object."""
    if type(value) is str:
        return value
    if value is MISSING:
        return None
    values = as_list(value)
    return scalar_text(values[0]) if values else None


@cython.cclass
class _Window:
    """The per-group state of one correlation: the newest event time it has seen, and ``state`` by kind —
    event_count: the event times in the window (arrival order); value_count: value → its newest time (arrival
    order); temporal: rule id → its newest time; temporal_ordered: the times of the steps matched so far. Windows
    are many (one per group) and made often, so each holds only its kind's container. ``departments``: those of the
    events counted since the window last fired (None, one name, or a set of names once there are several)."""

    last = cython.declare(cython.double, visibility="public")
    state = cython.declare(object, visibility="public")
    departments = cython.declare(object, visibility="public")

    def __init__(self, kind: str) -> None:
        self.last = 0.0
        self.state: Any = _new_state(_KINDS[kind])
        self.departments: Any = None

    @cython.ccall
    def count_department(self, name: Any) -> None:
        """Note the department of an event counted (``event_department``; anything but a name is no department)."""
        if type(name) is not str or name == self.departments:
            return
        if self.departments is None:
            self.departments = name
        elif type(self.departments) is str:
            self.departments = {self.departments, name}
        else:
            self.departments.add(name)


@cython.cfunc
@cython.locals(kind=cython.int)
def _new_state(kind: int) -> Any:
    """An empty window's container for a kind (see :class:`_Window`)."""
    return OrderedDict() if kind == _VALUE_COUNT else {} if kind == _TEMPORAL else []


@cython.cfunc
@cython.locals(kind=cython.int, window=_Window)
def _new_window(kind: int) -> _Window:
    """``_Window(kind)`` made without a Python call (windows are made for most events of a busy correlation)."""
    window = _Window.__new__(_Window)
    window.last = 0.0
    window.state = _new_state(kind)
    window.departments = None
    return window


@cython.ccall
def event_department(event: Event) -> Any:
    """``gov.department`` of an event (the register's owner of its system), or None."""
    gov = cython.cast(dict, event).get("gov") if type(event) is dict else event.get("gov")
    if type(gov) is dict:
        return cython.cast(dict, gov).get("department")
    return gov.get("department") if isinstance(gov, dict) else None


def _resolve_getters(group_by: tuple[str, ...], getters: dict[str, Any], alias_getters: dict[str, dict[str, Any]],
                     rule_id: str) -> tuple[Any, ...]:
    """The group-by getters for events of ``rule_id``: its alias's field where an alias names one for it."""
    return tuple(alias_getters.get(name, {}).get(rule_id) or getters[name] for name in group_by)


@cython.cclass
class _Tracker:
    """The group windows of one correlation."""

    corr = cython.declare(object, visibility="public")
    max_groups = cython.declare(cython.Py_ssize_t, visibility="public")
    # key → _Window; the key is the group-by value itself for one group-by field, a tuple of them for several (a
    # plain dict, not kept in use order: one lookup an event; sweeps and evictions read each window's newest time)
    groups = cython.declare(dict, visibility="public")
    getters = cython.declare(dict, visibility="public")
    alias_getters = cython.declare(dict, visibility="public")
    value_getter = cython.declare(FieldGetter, visibility="public")
    order = cython.declare(list, visibility="public")
    check = cython.declare(object, visibility="public")
    grows = cython.declare(cython.bint, visibility="public")
    timespan = cython.declare(cython.double)  # corr.timespan_s, and the others below, read per event
    kind = cython.declare(cython.int)  # _EVENT_COUNT …
    threshold = cython.declare(object)
    _by_rule_getters = cython.declare(dict)

    def __init__(self, corr: CompiledCorrelation, max_groups: int):
        self.corr = corr
        self.max_groups = max(1, max_groups)
        self.groups = {}
        self.getters = {name: FieldGetter(name) for name in corr.group_by}
        self.alias_getters = {alias: {rid: FieldGetter(f) for rid, f in fields.items()}
                              for alias, fields in corr.aliases.items()}
        self.value_getter = FieldGetter(corr.field) if corr.field else None
        self.order = [r.id for r in corr.rules]
        self.check = _OPS[corr.op] if corr.op else None
        # with gt/gte a count that still holds some expired values fails whenever the exact count fails
        self.grows = corr.op in ("gt", "gte")
        self.timespan = corr.timespan_s
        self.kind = _KINDS[str(corr.type)]
        self.threshold = corr.count
        self._by_rule_getters = {}
        for rule_id in self.order:
            self._key_getters(rule_id)

    @cython.ccall
    def _key_getters(self, rule_id: str) -> tuple:
        """The group-by getters for events matched by ``rule_id`` (its aliases resolved), memoised."""
        getters = self._by_rule_getters.get(rule_id)
        if getters is None:
            getters = self._by_rule_getters[rule_id] = _resolve_getters(self.corr.group_by, self.getters,
                                                                         self.alias_getters, rule_id)
        return getters

    @cython.ccall
    @cython.locals(getter=FieldGetter)
    def _key(self, event: Event, rule: CompiledRule | CompiledCorrelation) -> str | tuple[str, ...] | None:
        """The event's group key (see ``groups``); None when a group-by value is missing (the event is not
        counted)."""
        getters = self._key_getters(rule.id)
        if len(getters) == 1:  # the common case: one group-by field, its value the key
            getter = getters[0]
            return _key_part(getter.get(event))
        key: list[str] = []
        for getter in getters:
            part = _key_part(getter.get(event))
            if part is None:
                return None
            key.append(part)
        return tuple(key)

    @cython.ccall
    def _window(self, key: object) -> _Window:
        window = self.groups.get(key)
        if window is None:
            if len(self.groups) >= self.max_groups:
                self._evict()
            window = _new_window(self.kind)
            self.groups[key] = window
        return window

    def _evict(self) -> None:
        """Make room: drop the tenth of the groups (at least one) whose newest event is oldest."""
        drop = max(1, len(self.groups) - self.max_groups + 1, self.max_groups // 10)
        for key in heapq.nsmallest(drop, self.groups, key=self._last_of):
            del self.groups[key]

    def _last_of(self, key: object) -> float:
        return cython.cast(_Window, self.groups[key]).last

    def group_keys(self) -> list[tuple[str, ...]]:
        """The group-by values of every group held."""
        return [key if type(key) is tuple else (key,) for key in self.groups]

    @cython.ccall
    @cython.locals(window=_Window, ts=cython.double, last=cython.double, horizon=cython.double, kind=cython.int)
    def observe(self, event: Event, rule: CompiledRule | CompiledCorrelation, ts: float,
                department: Any = None) -> CorrelationMatch | None:
        """Count the event (matched by ``rule``, at ``ts``, of ``department``) in its group's window; the match when
        the correlation's condition then holds."""
        key = self._key(event, rule)
        if key is None:
            return None
        window = self._window(key)
        if ts > window.last:
            window.last = ts
        horizon = window.last - self.timespan  # the window ends at the newest event time of the group
        if ts < horizon:
            return None  # too late to count
        window.count_department(department)
        last = window.last
        count: int
        first: float
        kind = self.kind
        if kind == _EVENT_COUNT:
            times = window.state  # in time order
            if not times or ts >= times[-1]:
                times.append(ts)
            else:
                bisect.insort(times, ts)
            if times[0] < horizon:
                expired = 1
                while times[expired] < horizon:  # the newest is never below the horizon
                    expired += 1
                del times[:expired]
            count, first = len(times), times[0]
        elif kind == _VALUE_COUNT:
            values = window.state
            value = self.value_getter.get(event) if self.value_getter is not None else MISSING
            if value is not MISSING:
                for v in value if type(value) is list else (value,):
                    text = v if type(v) is str else scalar_text(v)
                    if text is None:  # null or an object: no value
                        continue
                    seen = values.pop(text, None)
                    values[text] = ts if seen is None or ts > seen else seen
            # values are in arrival order: drop the expired ones at the front (cheap), and count exactly only
            # when the condition may hold (events out of time order can leave expired values further back)
            while values:
                oldest = next(iter(values))
                if values[oldest] >= horizon:
                    break
                del values[oldest]
            if self.check is None or self.threshold is None or (
                    self.grows and not self.check(len(values), self.threshold)):
                return None
            for text in [v for v, t in values.items() if t < horizon]:
                del values[text]
            count = len(values)
            first = min(values.values(), default=ts)
        elif kind == _TEMPORAL:
            latest = window.state
            if ts > latest.get(rule.id, horizon - 1.0):
                latest[rule.id] = ts
            for rule_id in [r for r, t in latest.items() if t < horizon]:
                del latest[rule_id]
            count, first = len(latest), min(latest.values())
            if self.check is None:
                if count < len(set(self.order)):
                    return None
                return self._fire(key, window, count, first, last, event)
        else:  # temporal_ordered: the rules must match in the order listed, in time order, within the timespan
            sequence = window.state
            if sequence and sequence[0] < horizon:
                sequence.clear()
            if rule.id == self.order[len(sequence)] and (not sequence or ts >= sequence[-1]):
                sequence.append(ts)
            elif rule.id == self.order[0] and len(sequence) == 1 and ts >= sequence[0]:
                sequence[0] = ts  # a newer start replaces a lone one (more of the timespan left); progress is kept
            if len(sequence) < len(self.order):
                return None
            return self._fire(key, window, len(sequence), sequence[0], sequence[-1], event)
        if self.check is None or self.threshold is None or not self.check(count, self.threshold):
            return None
        return self._fire(key, window, count, first, last, event)

    def _fire(self, key: str | tuple[str, ...], window: _Window, count: int, first: float, last: float,
              event: Event) -> CorrelationMatch:
        del self.groups[key]
        seen = window.departments
        departments = () if seen is None else (seen,) if type(seen) is str else tuple(sorted(seen))
        values = key if type(key) is tuple else (key,)
        return CorrelationMatch(self.corr, dict(zip(self.corr.group_by, values, strict=True)), count, first, last,
                                event, departments)

    @cython.locals(window=_Window, horizon=cython.double)
    def sweep(self, now: float) -> int:
        """Drop the groups whose newest event is older than ``now`` minus the timespan (nothing in them can count
        any more). Returns how many went."""
        horizon = now - self.timespan
        expired = [key for key, window in self.groups.items() if window.last < horizon]
        for key in expired:
            del self.groups[key]
        return len(expired)

    @property
    def size(self) -> int:
        return len(self.groups)


@cython.cclass
class Correlator:
    """Feeds base-rule matches into the correlations that reference them (compiled, as are its trackers and
    windows: an extension type's attributes are struct fields, its methods called without a lookup)."""

    trackers = cython.declare(list, visibility="public")
    _by_rule = cython.declare(dict)
    latest = cython.declare(cython.double, visibility="public")

    def __init__(self, correlations: Iterable[CompiledCorrelation], max_groups: int = 50_000):
        self.trackers = [_Tracker(c, max_groups) for c in correlations]
        self._by_rule = {}
        for tracker in self.trackers:
            for rule_id in dict.fromkeys(tracker.order):
                self._by_rule.setdefault(rule_id, []).append(tracker)
        self.latest = 0.0  # the newest event time observed (the clock of :meth:`sweep`)

    @property
    def active(self) -> bool:
        return bool(self.trackers)

    @cython.ccall
    @cython.locals(tracker=_Tracker)
    def observe(self, event: Event, matched: Iterable[CompiledRule]) -> list[CorrelationMatch]:
        """Record the event for every correlation over the matched rules; returns those that fired
        (a correlation that fires feeds in turn the correlations chained on it)."""
        fired: list[CorrelationMatch] = []
        ts: float | None = None
        department: Any = None
        queue: list[CompiledRule | CompiledCorrelation] = list(matched)
        while queue:
            rule = queue.pop(0)
            for tracker in self._by_rule.get(rule.id, ()):
                if ts is None:  # once an event, and only for one a correlation counts
                    ts = event_time(event)
                    if ts > self.latest:
                        self.latest = ts
                    department = event_department(event)
                result = tracker.observe(event, rule, ts, department)
                if result is not None:
                    fired.append(result)
                    queue.append(result.correlation)
        return fired

    def sweep(self, now: float | None = None) -> int:
        """Drop expired group windows; returns how many. ``now`` (epoch seconds) defaults to the newest event time
        observed, capped at the wall clock: event time, so replaying old logs keeps its windows between batches,
        while one event stamped in the future cannot expire live windows. An event arriving more than a timespan
        behind the newest may miss a group already swept."""
        if now is None:
            now = min(self.latest, time.time())
        if now <= 0:
            return 0
        return sum(tracker.sweep(now) for tracker in self.trackers)

    @property
    def state_size(self) -> int:
        """Group windows held across all correlations (a metric)."""
        return sum(t.size for t in self.trackers)

    def state_by_correlation(self) -> dict[str, Any]:
        return {t.corr.id: t.size for t in self.trackers}
