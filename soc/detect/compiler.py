"""Compile pySigma's parsed condition trees into Python predicates over JSON events.

pySigma does the Sigma parsing: modifiers are already applied (``contains`` became wildcards, ``base64offset`` and
``windash`` became expansions, ``all`` became AND, ``neq`` became NOT) when we get the tree. This module gives
each node the meaning the Sigma specification defines, evaluated in memory:

* strings match case-insensitively unless ``cased``; ``*`` and ``?`` are wildcards; a value list in the event
  matches when any element does; numbers in the event compare with string values by their text;
* ``re`` searches (unanchored) with the i/m/s flags; ``cidr`` tests IPv4 and IPv6 membership;
* ``gt/gte/lt/lte`` compare numerically; ``exists`` tests presence; ``null`` matches a missing or null field;
* ``fieldref`` compares with another field of the same event (equal, or starts/ends with it);
* ``minute/hour/day/week/month/year`` compare a part of a timestamp field (UTC);
* keywords (values without a field) search every string in the event, as a full-text search does.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any, Final

import cython
from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionItem,
    ConditionNOT,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.types import (
    CompareOperators,
    Placeholder,
    SigmaBool,
    SigmaCasedString,
    SigmaCIDRExpression,
    SigmaCompareExpression,
    SigmaExists,
    SigmaExpansion,
    SigmaFieldReference,
    SigmaNull,
    SigmaNumber,
    SigmaQueryExpression,
    SigmaRegularExpression,
    SigmaRegularExpressionFlag,
    SigmaString,
    SigmaTimestampPart,
    SpecialChars,
    TimestampPart,
)

from soc.detect.values import TIME_PARTS, as_number, as_timestamp, in_network

Event = dict[str, Any]
Predicate = Callable[[Event], bool]
MISSING = object()


class CompileError(ValueError):
    """A rule uses something that cannot be evaluated in memory (the message says what)."""


# -- field access ---------------------------------------------------------------------------------------------

@cython.cclass
class FieldGetter:
    """The value of a field (a dotted path) in an event, or MISSING: :meth:`get`.

    The dotted path is followed through nested objects (``{"a": {"b": 1}}``), through lists of objects too
    (``{"a": [{"b": 1}, {"b": 2}]}`` gives [1, 2]); a flat key spelled with the dots (``{"a.b": 1}``) is used
    when the event has no such nested object. An extension type when compiled: the conditions call it without a
    Python call.
    """

    # attributes: name (public), parts, rests, head, tail, depth; declared in compiler.pxd (see there)

    def __init__(self, name: str):
        # interned, as the parsers' keys are: a dict lookup then finds its key by identity, not by comparing text
        self.name = sys.intern(str(name))
        self.parts = tuple(sys.intern(part) for part in self.name.split("."))
        self.depth = len(self.parts)
        self.rests = tuple(sys.intern(".".join(self.parts[i:])) for i in range(self.depth))
        self.head = self.parts[0]
        self.tail = self.parts[1] if self.depth == 2 else ""

    @cython.ccall
    def get(self, event: Event) -> Any:
        if type(event) is not dict:  # a mapping of another type (a dict subclass): its own get
            return self._get_from(event)
        flat = cython.cast(dict, event)  # a plain dict (every event parsed or read as JSON): C-level lookups
        if self.depth == 1:
            return flat.get(self.name, MISSING)
        if self.depth == 2:  # the common case (source.ip, event.action): a fast path for nested dicts
            inner = flat.get(self.head, MISSING)
            if type(inner) is dict:
                return cython.cast(dict, inner).get(self.tail, MISSING)
            if inner is MISSING:  # no such object: a flat key spelled with the dot, or nothing
                return flat.get(self.name, MISSING)
            return self._get_from(event)
        return self._get_deep(flat)

    @cython.ccall
    @cython.locals(i=cython.Py_ssize_t, flat=dict)
    def _get_deep(self, flat: dict) -> Any:
        """A path of three parts or more in a plain dict: as :func:`_walk` follows it, dicts read in C."""
        value = flat.get(self.name, MISSING)
        if value is not MISSING:
            return value
        node: Any = flat
        for i in range(self.depth):
            if type(node) is not dict:
                return _walk(node, self.parts[i:])
            found = cython.cast(dict, node).get(self.parts[i], MISSING)
            if found is MISSING:  # {"a": {"b.c": 1}} for a.b.c
                return cython.cast(dict, node).get(self.rests[i], MISSING)
            node = found
        return node

    @cython.ccall
    def _get_from(self, event: Any) -> Any:
        if self.depth == 1:
            return event.get(self.name, MISSING)
        if self.depth == 2:
            inner = event.get(self.head, MISSING)
            if isinstance(inner, dict):
                return inner.get(self.tail, MISSING)
            value = event.get(self.name, MISSING)
            return value if value is not MISSING or inner is MISSING else _walk(event, self.parts)
        value = event.get(self.name, MISSING)
        if value is not MISSING:
            return value
        return _walk(event, self.parts)


def field_getter(name: str) -> Callable[[Event], Any]:
    """A function returning the value of ``name`` in an event, or MISSING (see :class:`FieldGetter`)."""
    return FieldGetter(name).get


def _walk(node: Any, parts: tuple[str, ...]) -> Any:
    for i, part in enumerate(parts):
        if isinstance(node, dict):
            if part in node:
                node = node[part]
                continue
            rest = ".".join(parts[i:])  # {"a": {"b.c": 1}} for a.b.c
            return node.get(rest, MISSING)
        if isinstance(node, list):
            found = [v for v in (_walk(item, parts[i:]) for item in node) if v is not MISSING]
            return _flatten(found) if found else MISSING
        return MISSING
    return node


def _flatten(values: list[Any]) -> list[Any]:
    out: list[Any] = []
    for v in values:
        out.extend(v if isinstance(v, list) else [v])
    return out


def as_list(value: Any) -> list[Any]:
    """The scalar values to test: a list's elements, or the value itself."""
    if isinstance(value, list):
        return value
    return [value]


def scalar_text(value: Any) -> str | None:
    """The text a string comparison sees (numbers by their text, booleans as true/false), None for objects."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return None


def string_leaves(node: Any) -> Iterator[str]:
    """Every scalar in a JSON value as text (for keyword search)."""
    if isinstance(node, dict):
        for v in node.values():
            yield from string_leaves(v)
    elif isinstance(node, list):
        for v in node:
            yield from string_leaves(v)
    else:
        text = scalar_text(node)
        if text is not None:
            yield text


# -- condition nodes ------------------------------------------------------------------------------------------

@cython.cclass
class Check:
    """A compiled condition or a node of one: ``check(event)`` (or ``check.test(event)``) is true when the event
    matches; the value tests under a field's condition are Checks over one value. Extension types when compiled:
    a node calls its children through a C method table, not a Python call (which had been about a quarter of
    detection's instructions)."""

    @cython.ccall
    def test(self, subject: Any) -> bool:
        raise NotImplementedError

    def __call__(self, subject: Any) -> bool:
        return self.test(subject)


@cython.cclass
class _Call(Check):
    """A condition or value test written as a function (the rarer forms: keywords, null, field references;
    regexes, comparisons, CIDR, booleans, timestamp parts …)."""

    fn = cython.declare(object)

    def __init__(self, fn: Predicate):
        self.fn = fn

    @cython.ccall
    def test(self, event: Event) -> bool:
        return self.fn(event)


@cython.cclass
class Junction(Check):
    """All of the children (``decisive`` false) or any of them (true): stops at the first child whose result is
    ``decisive``."""

    children = cython.declare(list)
    decisive = cython.declare(cython.bint)

    def __init__(self, children: list[Check], decisive: bool):
        self.children = children
        self.decisive = decisive

    @cython.ccall
    @cython.locals(child=Check, result=cython.bint)
    def test(self, subject: Any) -> bool:
        for child in self.children:
            result = child.test(subject)
            if result == self.decisive:
                return self.decisive
        return not self.decisive


def all_of(children: list[Check]) -> Junction:
    return Junction(children, False)


def any_of(children: list[Check]) -> Junction:
    return Junction(children, True)


@cython.cclass
class Negation(Check):
    child = cython.declare(Check)

    def __init__(self, child: Check):
        self.child = child

    @cython.ccall
    def test(self, event: Event) -> bool:
        return not self.child.test(event)


# -- value matchers -------------------------------------------------------------------------------------------

# TextTest kinds
_EQUALS: Final = 0
_CONTAINS: Final = 1
_STARTS: Final = 2
_ENDS: Final = 3
_ANYTHING: Final = 4
_PATTERN: Final = 5


@cython.cfunc
@cython.locals(fold=cython.bint)
def _text_of(value: Any, fold: bool) -> Any:
    """What a string test compares: a scalar's text (None for objects and null), lowercased when it folds."""
    text = value if type(value) is str else scalar_text(value)
    return text.lower() if fold and text is not None else text


@cython.cclass
class TextTest(Check):
    """A Sigma string on a scalar's text (numbers by their text, booleans as true/false; objects never match):
    equal to, containing, starting or ending with a literal, anything, or a wildcard pattern; case-folded by
    ``str.lower`` unless cased."""

    kind = cython.declare(cython.int, visibility="public")
    literal = cython.declare(str)
    regex = cython.declare(object)
    fold = cython.declare(cython.bint, visibility="public")

    def __init__(self, kind: int, literal: str = "", regex: Any = None, fold: bool = True):
        self.kind = kind
        self.literal = literal
        self.regex = regex
        self.fold = fold

    @cython.ccall
    def test(self, value: Any) -> bool:
        text = _text_of(value, self.fold)
        return text is not None and self.holds(text)

    @cython.ccall
    @cython.locals(text=str)
    def holds(self, text: str) -> bool:
        """The comparison itself, on text already case-folded when the test folds."""
        kind = self.kind
        if kind == _EQUALS:
            return text == self.literal
        if kind == _CONTAINS:
            return self.literal in text
        if kind == _STARTS:
            return text.startswith(self.literal)
        if kind == _ENDS:
            return text.endswith(self.literal)
        if kind == _ANYTHING:
            return True
        return self.regex.fullmatch(text) is not None


@cython.cclass
class AnyText(Check):
    """Any of several Sigma strings on one value (a field's value list: ``contains`` a list of literals …), all
    folding alike: the value's text is made and case-folded once, not once per string."""

    tests = cython.declare(list)
    fold = cython.declare(cython.bint)

    def __init__(self, tests: list[TextTest], fold: bool):
        self.tests = tests
        self.fold = fold

    @cython.ccall
    @cython.locals(each=TextTest)
    def test(self, value: Any) -> bool:
        text = _text_of(value, self.fold)
        if text is None:
            return False
        for each in self.tests:  # noqa: SIM110 (a loop compiles to C; any() of a generator would not)
            if each.holds(text):
                return True
        return False


def _any_value(tests: list[Check]) -> Check:
    """Any of several value tests on one value: one AnyText when they are all strings folding alike."""
    if len(tests) > 1 and all(isinstance(t, TextTest) for t in tests):
        folds = {t.fold for t in tests}  # type: ignore[attr-defined]
        if len(folds) == 1:
            return AnyText(tests, folds.pop())  # type: ignore[arg-type]
    return tests[0] if len(tests) == 1 else any_of(tests)


def _text_test(value: SigmaString, contains: bool = False) -> TextTest:
    """The test on one string for a Sigma string with wildcards (case-insensitive unless cased); ``contains``
    wraps the value in ``*`` (keyword semantics)."""
    cased = isinstance(value, SigmaCasedString)
    star = SpecialChars.WILDCARD_MULTI
    parts = list(value.s)
    if contains and (not parts or parts[0] != star):
        parts.insert(0, star)
    if contains and parts[-1] != star:
        parts.append(star)
    for part in parts:
        if isinstance(part, Placeholder):
            raise CompileError(f"placeholder %{part.name}% has no value list (the expand modifier needs one)")
    strings = [p for p in parts if isinstance(p, str)]
    specials = [p for p in parts if not isinstance(p, str)]
    fold: Callable[[str], str] = (lambda s: s) if cased else str.lower
    if not specials:
        return TextTest(_EQUALS, fold("".join(strings)), fold=not cased)
    if all(p == star for p in specials) and len(strings) == 1:
        literal = fold(strings[0])
        if len(parts) == 3 and parts[0] == star and parts[2] == star:
            return TextTest(_CONTAINS, literal, fold=not cased)
        if len(parts) == 2 and parts[0] == star:
            return TextTest(_ENDS, literal, fold=not cased)
        if len(parts) == 2 and parts[1] == star:
            return TextTest(_STARTS, literal, fold=not cased)
    if all(p == star for p in parts):
        return TextTest(_ANYTHING, fold=not cased)
    # case folded by str.lower as in the paths above and the literal gates (re.IGNORECASE folds some letters,
    # such as the dotless ı, otherwise)
    pattern = "".join(re.escape(fold(p)) if isinstance(p, str) else (".*" if p == star else ".") for p in parts)
    return TextTest(_PATTERN, regex=re.compile(pattern, re.DOTALL), fold=not cased)


def _string_matcher(value: SigmaString, contains: bool = False) -> Callable[[str], bool]:
    """A test on one string for a Sigma string (see :func:`_text_test`)."""
    return _text_test(value, contains).test


_REGEX_FLAGS = {
    SigmaRegularExpressionFlag.IGNORECASE: re.IGNORECASE,
    SigmaRegularExpressionFlag.MULTILINE: re.MULTILINE,
    SigmaRegularExpressionFlag.DOTALL: re.DOTALL,
}


def _regex_matcher(value: SigmaRegularExpression) -> Callable[[str], bool]:
    flags = 0
    for flag in value.flags:
        flags |= _REGEX_FLAGS[flag]
    source = value.regexp.to_plain() if isinstance(value.regexp, SigmaString) else str(value.regexp)
    try:
        regex = re.compile(source, flags)
    except re.error as exc:
        raise CompileError(f"regular expression {source!r}: {exc}") from None
    return lambda s: regex.search(s) is not None


_COMPARE = {
    CompareOperators.LT: lambda a, b: a < b,
    CompareOperators.LTE: lambda a, b: a <= b,
    CompareOperators.GT: lambda a, b: a > b,
    CompareOperators.GTE: lambda a, b: a >= b,
}


_PARTS: dict[TimestampPart, Callable[[datetime], int]] = {
    part: TIME_PARTS[part.name.lower()] for part in TimestampPart
}


_EXACT_INT: Final = 2**53  # integers a float holds exactly (beyond, as_number decides)


@cython.cfunc
def _number_of(value: Any) -> Any:
    """:func:`as_number` of a value, an exact int within a float's exact range read without a call."""
    return float(value) if type(value) is int and -_EXACT_INT < value < _EXACT_INT else as_number(value)


def _scalar_test(value: Any) -> Check:
    """A test on one scalar event value for a Sigma value (not exists/null/fieldref, handled by the caller)."""
    if isinstance(value, SigmaExpansion):
        return _any_value([_scalar_test(v) for v in value.values])
    if isinstance(value, SigmaString):
        return _text_test(value)
    if isinstance(value, SigmaNumber) and not isinstance(value, SigmaTimestampPart):
        return NumberTest(value.number)
    return _Call(_other_test(value))


@cython.cclass
class NumberTest(Check):
    """A Sigma number on one value: a number equal to it, or text that is its text (surrounding blanks aside) or
    reads as an equal number."""

    number = cython.declare(cython.double)
    text = cython.declare(str)

    def __init__(self, number: int | float):
        self.number = float(number)
        self.text = str(number)

    @cython.ccall
    def test(self, value: Any) -> bool:
        if isinstance(value, str) and value.strip() == self.text:
            return True
        n = _number_of(value)
        return n is not None and n == self.number


def _other_test(value: Any) -> Callable[[Any], bool]:
    """A test on one scalar event value for a Sigma value other than a string, a number or an expansion."""
    if isinstance(value, SigmaRegularExpression):
        search = _regex_matcher(value)
        return lambda v: (t := scalar_text(v)) is not None and search(t)
    if isinstance(value, SigmaTimestampPart):
        part, wanted = _PARTS[value.timestamp_part], value.number
        return lambda v: (t := as_timestamp(v)) is not None and part(t) == wanted
    if isinstance(value, SigmaBool):
        wanted_bool = value.boolean
        return lambda v: v is wanted_bool or (isinstance(v, str) and v.lower() == str(wanted_bool).lower())
    if isinstance(value, SigmaCompareExpression):
        op, bound = _COMPARE[value.op], float(value.number.number)
        return lambda v: (n := as_number(v)) is not None and op(n, bound)
    if isinstance(value, SigmaCIDRExpression):
        network = value.network
        return lambda v: in_network(v, network)
    if isinstance(value, SigmaQueryExpression):
        raise CompileError(f"query expression {value.expr!r} is for query backends, not for in-memory matching")
    raise CompileError(f"value type {type(value).__name__} is not supported")


@cython.ccall
@cython.locals(check=Check, predicates=list, positions=list)
def matching(predicates: list, positions: list, event: Event) -> list:
    """The positions among ``positions`` whose predicate is true of ``event``, in order: compiled conditions are
    called through their C method (from another module each would be a Python call), anything else as a function."""
    out = []
    for i in positions:
        predicate = predicates[i]
        if isinstance(predicate, Check):
            check = predicate
            if check.test(event):
                out.append(i)
        elif predicate(event):
            out.append(i)
    return out


@cython.cclass
class FieldMatch(Check):
    """A field's value (any element of a list value) passing a value test; a missing or null field never does."""

    getter = cython.declare(FieldGetter)
    value_test = cython.declare(Check)

    def __init__(self, getter: FieldGetter, value_test: Check):
        self.getter = getter
        self.value_test = value_test

    @cython.ccall
    def test(self, event: Event) -> bool:
        value = self.getter.get(event)
        if value is MISSING or value is None:
            return False
        if isinstance(value, list):
            for item in value:  # noqa: SIM110 (as above)
                if self.value_test.test(item):
                    return True
            return False
        return self.value_test.test(value)


@cython.cclass
class Exists(Check):
    """A field present (``exists: true``) or absent (``exists: false``), whatever its value."""

    getter = cython.declare(FieldGetter)
    wanted = cython.declare(cython.bint)

    def __init__(self, getter: FieldGetter, wanted: bool):
        self.getter = getter
        self.wanted = wanted

    @cython.ccall
    def test(self, event: Event) -> bool:
        return (self.getter.get(event) is not MISSING) == self.wanted


def _field_predicate(field: str, value: Any) -> Check:
    if isinstance(value, SigmaExists):
        return Exists(FieldGetter(field), value.exists)
    if isinstance(value, SigmaNull):
        get = field_getter(field)
        return _Call(lambda e: (v := get(e)) is MISSING or v is None or v == [])
    if isinstance(value, SigmaFieldReference):
        return _Call(_reference_predicate(field, value))
    return FieldMatch(FieldGetter(field), _scalar_test(value))


def _reference_predicate(field: str, value: SigmaFieldReference) -> Predicate:
    get, other = field_getter(field), field_getter(value.field)

    def compare(e: Event) -> bool:
        a, b = get(e), other(e)
        if a is MISSING or b is MISSING:
            return False
        texts = [t for t in map(scalar_text, as_list(b)) if t is not None]
        for v in as_list(a):
            t = scalar_text(v)
            if t is None:
                continue
            for ref in texts:
                if (value.starts_with and t.startswith(ref)) or (value.ends_with and t.endswith(ref)) or (
                        not value.starts_with and not value.ends_with and t == ref):
                    return True
        return False
    return compare


_NOTHING: Final = (None, None, None)
# (the event Detector.match is on, its keyword texts, the same lowercased) in a one-slot list, replaced whole: a
# reader sees one consistent triple from whichever thread wrote it, and the module's globals never change (a
# compiled module's cached global lookups would all go stale on every write)
_KEYWORDS_OF: list[tuple[Any, Any, Any]] = [_NOTHING]


def remember_keywords(event: Event) -> None:
    """Keep the keyword texts computed for ``event`` (by identity) until ``forget_keywords``: the rules that search
    keywords on one event then share one computation. Detector.match brackets each event with these."""
    _KEYWORDS_OF[0] = (event, None, None)


def forget_keywords() -> None:
    _KEYWORDS_OF[0] = _NOTHING


def keyword_texts(event: Event) -> list[str]:
    """What keywords search: the raw line (``event.original``) or ``message`` when the event has them (events
    Yunshu parsed), otherwise every value of the event (JSON events given as they are). Kept while ``event`` is
    the one ``remember_keywords`` named, computed each time otherwise."""
    memo = _KEYWORDS_OF[0]
    if memo[0] is event and memo[1] is not None:
        return memo[1]
    if type(event) is dict:  # C-level lookups in plain dicts (every parsed or JSON event)
        inner = cython.cast(dict, event).get("event")
        message = cython.cast(dict, event).get("message")
    else:
        inner = event.get("event")
        message = event.get("message")
    if type(inner) is dict:
        original = cython.cast(dict, inner).get("original")
    else:
        original = inner.get("original") if isinstance(inner, dict) else None
    if message is original:  # parsers often keep the line as both: search it once
        message = None
    texts = [t for t in (original, message) if isinstance(t, str)] or list(string_leaves(event))
    if memo[0] is event:
        _KEYWORDS_OF[0] = (event, texts, None)
    return texts


def lowered_texts(event: Event) -> list[str]:
    """The keyword texts, lowercased (kept while ``event`` is the remembered one; lowercased only when asked: the
    literal gates scan ASCII text as it stands)."""
    texts = keyword_texts(event)
    memo = _KEYWORDS_OF[0]
    if memo[0] is not event or memo[1] is not texts:
        return [t.lower() for t in texts]
    lowered = memo[2]
    if lowered is None:
        lowered = [t.lower() for t in texts]
        _KEYWORDS_OF[0] = (event, texts, lowered)
    return lowered


def _plain_text(value: SigmaString) -> str:
    """The text of a Sigma string without wildcards, as matched (``to_plain`` would write escapes back in)."""
    return "".join(part for part in value.s if isinstance(part, str))


def _keyword_predicate(value: Any) -> Predicate:
    if isinstance(value, SigmaNumber) and not isinstance(value, SigmaTimestampPart):
        value = SigmaString(str(value.number))  # a number keyword is searched for as text, like any keyword
    if isinstance(value, SigmaString) and not value.contains_special() and not isinstance(value, SigmaCasedString):
        needle = _plain_text(value).lower()
        return lambda e: any(needle in t for t in lowered_texts(e))
    if isinstance(value, SigmaString):
        match = _string_matcher(value, contains=True)
        return lambda e: any(match(t) for t in keyword_texts(e))
    if isinstance(value, SigmaExpansion):
        alternatives = [_keyword_predicate(v) for v in value.values]
        return lambda e: any(p(e) for p in alternatives)
    test = _scalar_test(value)
    return lambda e: any(test(t) for t in keyword_texts(e))


# -- condition trees ------------------------------------------------------------------------------------------

def compile_condition(node: ConditionItem) -> Check:
    """A predicate for a parsed condition (``rule.detection.parsed_condition[i].parsed``)."""
    if isinstance(node, ConditionAND):
        return all_of([compile_condition(a) for a in node.args])
    if isinstance(node, ConditionOR):
        equal = _equality_set(node)
        if equal is not None:
            return equal
        lookup = _keyword_set(node)
        if lookup is not None:
            return _Call(lookup)
        one_field = _one_field_values(node)
        if one_field is not None:
            return one_field
        return any_of([compile_condition(a) for a in node.args])
    if isinstance(node, ConditionNOT):
        return Negation(compile_condition(node.args[0]))
    if isinstance(node, ConditionFieldEqualsValueExpression):
        return _field_predicate(node.field, node.value)
    if isinstance(node, ConditionValueExpression):
        return _Call(_keyword_predicate(node.value))
    raise CompileError(f"condition element {type(node).__name__} is not supported")


def _one_field_values(node: ConditionOR) -> Check | None:
    """``field: [v1, v2, …]`` (an OR of value tests on one field) as one FieldMatch: the field is read once and its
    value tested against each (the same as each test reading it: some element passes some test); None for
    anything else (exists, null and field references keep their own nodes)."""
    args = node.args
    if len(args) < 2 or not all(isinstance(a, ConditionFieldEqualsValueExpression) for a in args):
        return None
    if len({a.field for a in args}) != 1 or any(  # type: ignore[attr-defined]
            isinstance(a.value, (SigmaExists, SigmaNull, SigmaFieldReference)) for a in args):  # type: ignore[attr-defined]
        return None
    return FieldMatch(FieldGetter(args[0].field), _any_value([_scalar_test(a.value) for a in args]))  # type: ignore[attr-defined]


def _plain_key(value: Any) -> tuple[str, str] | None:
    """The set key of a value that plain equality can test: ("text", case-folded text) of a wildcard-free string,
    ("number", its text) of a number; None for anything else (wildcards, cased strings, regexes …)."""
    if isinstance(value, SigmaCasedString):
        return None
    if isinstance(value, SigmaString) and not value.contains_special():
        return "text", _plain_text(value).lower()
    if isinstance(value, SigmaNumber) and not isinstance(value, SigmaTimestampPart):
        return "number", str(value.number)
    return None


@cython.cclass
class ValueSet(Check):
    """A value equal to any of many plain values, as set lookups: strings by their case-folded text (``texts``),
    numbers as numbers or by their text (``numbers``, ``number_texts``), each compared as :func:`_scalar_test`
    compares it one by one (a field's value list is walked by the FieldMatch above it)."""

    texts = cython.declare(frozenset)
    number_texts = cython.declare(frozenset)
    numbers = cython.declare(frozenset)

    def __init__(self, texts: frozenset[str], number_texts: frozenset[str]):
        self.texts = texts
        self.number_texts = number_texts
        self.numbers = frozenset(float(k) for k in number_texts)

    @cython.ccall
    def test(self, v: Any) -> bool:
        if self.texts:
            t = v if type(v) is str else scalar_text(v)
            if t is not None and t.lower() in self.texts:
                return True
        if self.numbers:
            if isinstance(v, str) and v.strip() in self.number_texts:
                return True
            n = _number_of(v)
            if n is not None and n in self.numbers:
                return True
        return False


def _equality_set(node: ConditionOR) -> FieldMatch | None:
    """``field: [a, b, c, …]`` (an OR of plain equalities on one field) as one :class:`ValueSet` on the field, or
    None."""
    args = node.args
    if len(args) < 4 or not all(isinstance(a, ConditionFieldEqualsValueExpression) for a in args):
        return None
    fields = {a.field for a in args}  # type: ignore[attr-defined]
    keys = [_plain_key(a.value) for a in args]  # type: ignore[attr-defined]
    if len(fields) != 1 or any(k is None for k in keys):
        return None
    texts = frozenset(k for kind, k in keys if kind == "text")  # type: ignore[misc]
    number_texts = frozenset(k for kind, k in keys if kind == "number")  # type: ignore[misc]
    return FieldMatch(FieldGetter(fields.pop()), ValueSet(texts, number_texts))


def _keyword_set(node: ConditionOR) -> Predicate | None:
    """An OR of plain keywords (no wildcards, not cased) as one scan of the keyword texts, or None."""
    needles: list[str] = []
    for arg in node.args:
        value = getattr(arg, "value", None) if isinstance(arg, ConditionValueExpression) else None
        if not isinstance(value, SigmaString) or isinstance(value, SigmaCasedString) or value.contains_special():
            return None
        needles.append(_plain_text(value).lower())
    if len(needles) < 2:
        return None
    unique = tuple(dict.fromkeys(needles))
    return lambda e: any(n in t for t in lowered_texts(e) for n in unique)


def required_fields(node: ConditionItem) -> frozenset[str]:
    """Fields that must be present in any event the condition matches (used to index rules).

    AND needs what any child needs; OR only what every child needs; NOT, keywords, null and exists:false need
    nothing. Keywords are left out because they can match any field.
    """
    if isinstance(node, ConditionAND):
        out: frozenset[str] = frozenset()
        for child in node.args:
            out |= required_fields(child)
        return out
    if isinstance(node, ConditionOR):
        sets = [required_fields(a) for a in node.args]
        return frozenset.intersection(*sets) if sets else frozenset()
    if isinstance(node, ConditionFieldEqualsValueExpression):
        value = node.value
        if isinstance(value, SigmaNull) or (isinstance(value, SigmaExists) and not value.exists):
            return frozenset()
        return frozenset({node.field})
    return frozenset()


# -- literal gates (for the Aho-Corasick prefilter) ----------------------------------------------------------

KEYWORDS = "\x00keywords"  # the gate target of keyword (unbound) values
# Fields that are (nearly) the same for every event of a log source, or take one of a handful of values (a request
# method, an outcome): literals in them filter little, so a rule is gated on another of its literals when it has one.
_SAME_PER_SOURCE = {"event.dataset", "event.module", "event.kind", "event.category", "event.type", "ecs.version",
                    "log.syslog.appname", "process.name", "service.name", "http.request.method", "event.outcome",
                    "network.transport", "network.protocol", "log.level"}
Gate = dict[str, frozenset[str]]  # target (field or KEYWORDS) → needles; the rule needs at least one of them


def _needle(value: Any) -> frozenset[str] | None:
    """Lowercased literals one of which a matching value must contain, or None when there is none."""
    if isinstance(value, SigmaExpansion):
        parts = [_needle(v) for v in value.values]
        if any(p is None for p in parts):
            return None
        return frozenset().union(*parts)  # type: ignore[arg-type]
    if isinstance(value, SigmaString) and not any(isinstance(p, Placeholder) for p in value.s):
        literals = [p for p in value.s if isinstance(p, str)]
        longest = max(literals, key=len, default="").lower()
        return frozenset({longest}) if len(longest) >= 2 else None
    return None


def literal_gate(node: ConditionItem) -> Gate | None:
    """Where a rule's condition needs a literal: {target: needles} such that no event matches unless one of the
    needles occurs (lowercased) in the target's text; None when no such gate can be derived."""
    if isinstance(node, ConditionFieldEqualsValueExpression):
        needles = _needle(node.value)
        return {node.field: needles} if needles else None
    if isinstance(node, ConditionValueExpression):
        needles = _needle(node.value)
        return {KEYWORDS: needles} if needles else None
    if isinstance(node, ConditionAND):
        gates = [g for g in (literal_gate(a) for a in node.args) if g]
        # any child's gate is necessary; prefer fields whose values differ between events of one source, then
        # the gate whose shortest needle is longest
        return max(gates, key=lambda g: (not set(g) & _SAME_PER_SOURCE,
                                         min(len(n) for ns in g.values() for n in ns)), default=None)
    if isinstance(node, ConditionOR):
        merged: dict[str, frozenset[str]] = {}
        for child in node.args:
            gate = literal_gate(child)
            if gate is None:
                return None
            for target, needles in gate.items():
                merged[target] = merged.get(target, frozenset()) | needles
        return merged or None
    return None
