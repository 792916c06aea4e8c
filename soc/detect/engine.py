"""The in-process detector: every event is evaluated once against the rules that can apply to it.

Rules are indexed so the cost per event does not grow with the number of rules loaded:

1. by log source — an event's ``event.dataset`` names its Sigma log sources (``logsources.yaml``); only rules
   whose log source is compatible are candidates (events of unknown datasets see every rule);
2. by literal — a rule that cannot match unless some literal occurs in a field (or, for keywords, in the raw
   line) is filed under those literals in one literal matcher per field (Hyperscan, or an Aho-Corasick automaton);
   one pass over the event's text finds every rule whose literal is there (``compiler.literal_gate``);
3. by a field each remaining rule needs — a rule whose condition cannot be true without field F is filed under F,
   and is only evaluated when the event has F. Rules needing nothing in particular are always evaluated.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from time import perf_counter
from typing import Any

import ahocorasick
import cython
import yaml

try:
    import hyperscan
except ImportError:  # no wheel for this platform: the Aho-Corasick automaton does the same work
    hyperscan = None
if hyperscan is not None:
    try:
        hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK).compile(expressions=[b"ab"])
    except hyperscan.error:  # a CPU Hyperscan does not support
        hyperscan = None
try:  # Hyperscan's C API, built when libhyperscan-dev is installed (soc.native.LIBRARY_BOUND)
    from soc.detect.hs_literals import Literals
    Literals(["ab"], [None])
except (ImportError, ValueError):
    Literals = None

from soc.detect.compiler import KEYWORDS, MISSING, Event

if cython.compiled:  # C calls into the compiled compiler (its compiler.pxd; soc.native.CIMPORTS)
    from cython.cimports.posix.time import CLOCK_MONOTONIC, clock_gettime, timespec
    from cython.cimports.soc.detect import compiler
else:
    from soc.detect import compiler
from soc.detect.correlation import CorrelationMatch, Correlator
from soc.detect.loader import CompiledRule, RuleSet

LOGSOURCES_FILE = Path(__file__).with_name("logsources.yaml")
LogSource = tuple[str | None, str | None, str | None]
# Fields nearly every event has: poor anchors, used only when a rule needs nothing else.
_COMMON = {"message", "@timestamp", "event.dataset", "event.module", "event.kind", "event.category",
           "event.original", "host.name", "ecs.version"}


@cache
def dataset_logsources(path: Path = LOGSOURCES_FILE) -> dict[str, tuple[LogSource, ...]]:
    """``event.dataset`` → its log sources, from the data file (validated: known keys, string values)."""
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of dataset → list of log sources")
    out: dict[str, tuple[LogSource, ...]] = {}
    for dataset, entries in data.items():
        if not isinstance(entries, list) or not entries:
            raise ValueError(f"{path}: {dataset}: expected a non-empty list of log sources")
        sources: list[LogSource] = []
        for entry in entries:
            if not isinstance(entry, dict) or not set(entry) <= {"product", "category", "service"} or not all(
                    isinstance(v, str) for v in entry.values()):
                raise ValueError(f"{path}: {dataset}: each log source has only product/category/service strings")
            sources.append((entry.get("product"), entry.get("category"), entry.get("service")))
        out[str(dataset)] = tuple(sources)
    return out


def compatible(rule: LogSource, event_sources: Iterable[LogSource]) -> bool:
    """True when every attribute the rule names equals that of one of the event's log sources."""
    return any(all(r is None or r == e for r, e in zip(rule, source, strict=True)) for source in event_sources)


@dataclass
class Match:
    """A rule that matched an event."""

    rule: CompiledRule
    event: Event


RuleGroup = tuple[int, ...]  # the positions in its bucket of the rules a gate files under one needle
LITERAL_ENGINES = ("hyperscan", "ahocorasick")
# How a "hyperscan" gate calls Hyperscan: through its C API (soc.detect.hs_literals) when that is built, else through
# the hyperscan wheel's binding ("wheel", also what the tests compare the C API with).
HYPERSCAN_CALLS = ("c-api", "wheel")
MEMO_SIZE = 4096  # field values a gate remembers the rule groups of (cleared when full)
MEMO_TRIAL = 4096  # lookups after which a gate whose values mostly differ stops remembering them


def _hex_pattern(needle: str) -> bytes:
    """A Hyperscan expression matching exactly the UTF-8 bytes of ``needle`` (every byte escaped: no syntax)."""
    return "".join(f"\\x{byte:02x}" for byte in needle.encode("utf-8", "surrogatepass")).encode("ascii")


def _collect(pattern: int, _start: int, _end: int, _flags: int, found: list[int]) -> None:
    found.append(pattern)


@cython.cclass
class _Gate:
    """One literal gate of a bucket: its rules' needles over a field (or the keyword texts), and what finds them.

    The search runs in Hyperscan (one pass of vectorised literal matching, each needle reported once) when it is
    installed, called through its C API when that is built (a tenth of the binding's cost a call), else in a
    pyahocorasick automaton; all give the same groups. A field's value often repeats (a
    method, an action, a user agent), so a field gate remembers which rule groups each string value brought; a gate
    that keeps missing (URLs, messages: most values new) stops remembering after MEMO_TRIAL lookups. The memo holds
    exact results: what a gate finds never depends on it.
    """

    target = cython.declare(object, visibility="public")
    get = cython.declare(compiler.FieldGetter, visibility="public")  # None for the keyword texts
    groups = cython.declare(list, visibility="public")
    automaton = cython.declare(object, visibility="public")
    database = cython.declare(object, visibility="public")
    literals = cython.declare(object, visibility="public")  # hs_literals.Literals, when Hyperscan's C API is used
    _scan = cython.declare(object)  # its bound search (no method looked up a scan), or None
    _local = cython.declare(object)
    memo = cython.declare(object, visibility="public")  # dict, or None once the gate stops remembering
    hits = cython.declare(cython.Py_ssize_t, visibility="public")
    misses = cython.declare(cython.Py_ssize_t, visibility="public")

    def __init__(self, target: str, get: Any, needles: dict[str, RuleGroup], engine: str,
                 hyperscan_calls: str | None = None):
        """``hyperscan_calls``: "c-api" or "wheel" (default: the C API when built; see HYPERSCAN_CALLS)."""
        self.target = target
        self.get = get
        self.groups = list(needles.values())
        self.automaton: Any = None
        self.database: Any = None
        self.literals: Any = None
        self._scan: Any = None
        if hyperscan_calls is None:
            hyperscan_calls = "wheel" if Literals is None else "c-api"
        if engine == "hyperscan" and hyperscan_calls == "c-api":
            # caseless: an ASCII text is scanned as it stands, without lowercasing it first (see search_raw)
            self.literals = Literals(list(needles), self.groups, caseless=True)
            self._scan = self.literals.search
        elif engine == "hyperscan":
            self.database = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
            self.database.compile(expressions=[_hex_pattern(n) for n in needles], ids=list(range(len(needles))),
                                  elements=len(needles), flags=[hyperscan.HS_FLAG_SINGLEMATCH] * len(needles))
            self._local = threading.local()  # Hyperscan scratch space is per thread
        else:
            self.automaton = ahocorasick.Automaton()
            for needle, group in needles.items():
                self.automaton.add_word(needle, group)
            self.automaton.make_automaton()
        self.memo: dict[str, tuple[RuleGroup, ...]] | None = None if target == KEYWORDS else {}
        self.hits = 0
        self.misses = 0

    @cython.ccall
    @cython.locals(text=str)
    def search(self, text: str) -> tuple[RuleGroup, ...]:
        """The rule groups whose needle occurs in ``text`` (lowercased already), each once."""
        if self._scan is not None:
            return self._scan(text)
        if self.database is None:
            return tuple(dict.fromkeys([group for _end, group in self.automaton.iter(text)]))
        scratch = getattr(self._local, "scratch", None)
        if scratch is None:
            scratch = self._local.scratch = hyperscan.Scratch(self.database)
        found: list[int] = []
        self.database.scan(text.encode("utf-8", "surrogatepass"), match_event_handler=_collect, context=found,
                           scratch=scratch)
        groups = self.groups
        return tuple(dict.fromkeys([groups[i] for i in found]))

    @cython.ccall
    @cython.locals(text=str)
    def search_raw(self, text: str) -> tuple[RuleGroup, ...]:
        """:meth:`search` on ``text`` lowercased. Hyperscan's C API scans an ASCII text as it stands, its literals
        caseless: for ASCII, ``str.lower`` changes exactly the letters caseless matching ignores."""
        if self._scan is not None and text.isascii():
            return self._scan(text)
        return self.search(text.lower())

    @cython.ccall
    def remembered(self, value: str) -> tuple[RuleGroup, ...]:
        """:meth:`search_raw` on a string value, through the memo while there is one."""
        memo = self.memo
        if memo is None:
            return self.search_raw(value)
        found = cython.cast(dict, memo).get(value)
        if found is not None:
            self.hits += 1
            return found
        found = self.search_raw(value)
        self.misses += 1
        if self.misses >= MEMO_TRIAL and self.hits < self.misses:
            self.memo = None
        elif len(memo) >= MEMO_SIZE:
            memo.clear()
        else:
            memo[value] = found
        return found


@cython.cclass
class _Bucket:
    """The rules of one dataset, as the detector looks them up: by their position in ``rules`` (sets of small
    integers, sorted to keep matches in rule order)."""

    rules = cython.declare(list, visibility="public")
    predicates = cython.declare(list, visibility="public")  # each rule's predicate, by position
    always = cython.declare(list, visibility="public")  # positions
    anchored = cython.declare(list, visibility="public")  # (getter, positions)
    gated = cython.declare(list, visibility="public")  # _Gate, whose groups are tuples of positions

    def __init__(self, rules: list[CompiledRule]):
        self.rules = rules
        self.predicates = [rule.predicate for rule in rules]
        self.always = []
        self.anchored = []
        self.gated = []


@cython.ccall
@cython.locals(line=str, message=str, get=compiler.FieldGetter)
def _gate_text(event: Event, target: str, get: Any) -> str | None:
    """The text a literal gate looks at (to be lowercased, :meth:`_Gate.search_raw`): the keyword texts, or the
    field's value(s)."""
    if target == KEYWORDS:
        line = _raw_line(event)
        if line is not None:
            return line
        texts = compiler.keyword_texts(event)
        # the message is part of the raw line (mostly its end, a cheaper test than a substring search): search the
        # line once. Compared as they stand when ASCII (lowercasing keeps containment), lowercased otherwise (the
        # final sigma lowercases by context)
        if len(texts) == 2:
            line, message = texts
            if not (line.isascii() and message.isascii()):
                line, message = compiler.lowered_texts(event)
            if line.endswith(message) or message in line:
                return line
        return "\x00".join(texts)
    value = get.get(event)
    if type(value) is str:  # the common case: one string, no list to walk
        return value
    if value is MISSING or value is None:
        return None
    texts = []
    for item in value if isinstance(value, list) else [value]:
        text = compiler.scalar_text(item)
        if text is not None:
            texts.append(text)
    return "\x00".join(texts)


@cython.cfunc
@cython.returns(cython.double)
def _clock() -> float:
    """Seconds of the monotonic clock ``perf_counter`` reads (compiled: read in C, no float object made)."""
    if cython.compiled:
        now = cython.declare(timespec)
        clock_gettime(CLOCK_MONOTONIC, cython.address(now))
        return now.tv_sec + now.tv_nsec * 1e-9
    return perf_counter()


@cython.cfunc
@cython.locals(line=str, message=str)
def _raw_line(event: Event) -> str | None:
    """The keyword texts' search text in the common case, read straight from a parsed event: the raw line
    (``event.original``) when ``message`` is that line or, both ASCII, a part of it; else None (the general way)."""
    if type(event) is not dict:
        return None
    inner = cython.cast(dict, event).get("event")
    text = cython.cast(dict, event).get("message")
    if type(inner) is not dict or type(text) is not str:
        return None
    original = cython.cast(dict, inner).get("original")
    if original is text:
        return text
    if type(original) is not str:
        return None
    line, message = original, text
    if line.isascii() and message.isascii() and (line.endswith(message) or message in line):
        return line
    return None


def _anchor(rule: CompiledRule) -> str | None:
    """The field a rule is filed under: a needed field, preferring the uncommon and the specific."""
    if not rule.required:
        return None
    return min(rule.required, key=lambda f: (f in _COMMON, -f.count("."), f))


@cython.cclass
class Detector:
    """Evaluates events against a RuleSet; counts the events evaluated and the time spent (detections by rule are
    counted where they are recorded: the metrics of soc.alerts.stage).

    Compiled as an extension type (as are its buckets and gates): attributes are struct fields and the per-event
    methods are called without a lookup (about a sixth of detection's instructions had gone to finding attributes and
    methods).
    """

    literal_engine = cython.declare(str, visibility="public")
    hyperscan_calls = cython.declare(object, visibility="public")  # None: the C API when built, else the wheel
    ruleset = cython.declare(object, visibility="public")
    rules = cython.declare(object, visibility="public")  # the ruleset's list (or any sequence), read per new bucket
    logsources = cython.declare(object, visibility="public")  # any mapping of dataset → log sources
    correlator = cython.declare(object, visibility="readonly")
    _observe = cython.declare(object)  # the correlator's bound observe (no method looked up an event)
    _correlating = cython.declare(cython.bint)  # whether the correlator has any correlation
    _buckets = cython.declare(dict)
    evaluated = cython.declare(cython.Py_ssize_t, visibility="public")
    eval_seconds = cython.declare(cython.double, visibility="public")

    def __init__(self, ruleset: RuleSet, logsources: dict[str, tuple[LogSource, ...]] | None = None,
                 correlator: Correlator | None = None, literal_engine: str | None = None,
                 hyperscan_calls: str | None = None):
        """``literal_engine``: "hyperscan" or "ahocorasick" for the literal gates (default: Hyperscan when
        installed); ``hyperscan_calls``: how Hyperscan is called (HYPERSCAN_CALLS; default: its C API when built)."""
        has_hyperscan = hyperscan is not None or Literals is not None
        if literal_engine is None:
            literal_engine = "hyperscan" if has_hyperscan else "ahocorasick"
        if literal_engine not in LITERAL_ENGINES or (literal_engine == "hyperscan" and not has_hyperscan):
            raise ValueError(f"literal_engine {literal_engine!r}: expected one of {', '.join(LITERAL_ENGINES)}"
                             + (" (hyperscan is not installed)" if literal_engine == "hyperscan" else ""))
        unavailable = {"c-api": Literals is None, "wheel": hyperscan is None}
        if hyperscan_calls is not None and (hyperscan_calls not in HYPERSCAN_CALLS or unavailable[hyperscan_calls]):
            raise ValueError(f"hyperscan_calls {hyperscan_calls!r}: expected one of "
                             f"{', '.join(c for c in HYPERSCAN_CALLS if not unavailable[c]) or 'none (not installed)'}")
        self.literal_engine = str(literal_engine)
        self.hyperscan_calls = hyperscan_calls
        self.ruleset = ruleset
        self.rules = ruleset.rules
        self.logsources = dataset_logsources() if logsources is None else logsources
        self.correlator = correlator if correlator is not None else Correlator(ruleset.correlations)
        self._observe = self.correlator.observe
        self._correlating = bool(self.correlator.active)
        self._buckets: dict[str | None, _Bucket] = {}
        self.evaluated = 0
        self.eval_seconds = 0.0

    @cython.ccall
    def _bucket(self, dataset: str | None) -> _Bucket:
        bucket = self._buckets.get(dataset)
        if bucket is None:
            sources = self.logsources.get(dataset) if dataset else None
            rules = self.rules if sources is None else [r for r in self.rules if compatible(r.logsource, sources)]
            bucket = _Bucket(list(rules))
            by_field: dict[str, list[int]] = {}
            by_needle: dict[str, dict[str, list[int]]] = {}
            for position, rule in enumerate(rules):
                if rule.gate:
                    for target, needles in rule.gate.items():
                        for needle in needles:
                            by_needle.setdefault(target, {}).setdefault(needle, []).append(position)
                    continue
                anchor = _anchor(rule)
                if anchor is None:
                    bucket.always.append(position)
                else:
                    by_field.setdefault(anchor, []).append(position)
            bucket.anchored = [(compiler.FieldGetter(name), tuple(group)) for name, group in sorted(by_field.items())]
            for target, needles in sorted(by_needle.items()):
                getter = None if target == KEYWORDS else compiler.FieldGetter(target)
                groups = {needle: tuple(group) for needle, group in needles.items()}
                bucket.gated.append(_Gate(target, getter, groups, self.literal_engine, self.hyperscan_calls))
            self._buckets[dataset] = bucket
        return bucket

    @cython.ccall
    @cython.locals(bucket=_Bucket)
    def _bucket_of(self, event: Event) -> _Bucket:
        inner = cython.cast(dict, event).get("event") if type(event) is dict else event.get("event")
        if type(inner) is dict:  # C-level lookups in plain dicts (every parsed or JSON event)
            dataset = cython.cast(dict, inner).get("dataset")
        else:
            dataset = inner.get("dataset") if isinstance(inner, dict) else event.get("event.dataset")
        bucket = self._buckets.get(dataset) if isinstance(dataset, str) else None
        if bucket is None:
            bucket = self._bucket(dataset if isinstance(dataset, str) else None)
        return bucket

    @cython.ccall
    @cython.locals(gate=_Gate, bucket=_Bucket, found=set, get=compiler.FieldGetter)
    def _positions(self, bucket: _Bucket, event: Event) -> list:
        """The positions in ``bucket.rules`` of the rules worth evaluating on this event, in order."""
        # the groups found (each a tuple of positions in order); mostly one, whose positions need no set or sort
        groups = [bucket.always] if bucket.always else []
        for get, group in bucket.anchored:
            if get.get(event) is not MISSING:
                groups.append(group)
        for gate in bucket.gated:
            if gate.memo is not None:
                value = gate.get.get(event)
                if type(value) is str:
                    groups.extend(gate.remembered(value))
                    continue
                if value is MISSING or value is None:  # nothing to search (as _gate_text finds)
                    continue
            text = _gate_text(event, gate.target, gate.get)
            if text:
                groups.extend(gate.search_raw(text))
        if len(groups) == 1:
            return list(groups[0])
        found = set()
        for group in groups:
            found.update(group)
        return sorted(found)

    @cython.ccall
    @cython.locals(bucket=_Bucket)
    def candidates(self, event: Event) -> list[CompiledRule]:
        """The rules worth evaluating on this event (see the module docstring)."""
        bucket = self._bucket_of(event)
        rules = bucket.rules
        return [rules[i] for i in self._positions(bucket, event)]

    @cython.ccall
    @cython.locals(bucket=_Bucket)
    def match(self, event: Event) -> list[CompiledRule]:
        """The rules matching one event (each candidate evaluated once)."""
        started = _clock()
        bucket = self._bucket_of(event)
        predicates = bucket.predicates
        rules = bucket.rules
        compiler.remember_keywords(event)  # the rules searching keywords share one computation of the texts
        try:
            matched = [rules[i] for i in compiler.matching(predicates, self._positions(bucket, event), event)]
        finally:
            compiler.forget_keywords()
        self.eval_seconds += _clock() - started
        self.evaluated += 1
        return matched

    @cython.ccall
    def process(self, event: Event) -> tuple[list[CompiledRule], list[CorrelationMatch]]:
        """Rules matching the event, and the correlations the matches completed."""
        matched = self.match(event)
        correlated = self._observe(event, matched) if matched and self._correlating else []
        return matched, correlated
