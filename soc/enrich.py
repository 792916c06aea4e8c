"""Enrichment: the owning system from the register, and personal information tagged and masked.

The register index maps host names and IPv4/IPv6 addresses to the system's classification, so that
every event carries ``gov.system.id``, ``gov.department``, ``gov.mlps_level`` and ``gov.data_class``.
PII (身份证号 with a valid check digit, 手机号, bank card numbers passing Luhn) is looked for in every field that
can carry the source's free text (``PII_FIELDS``: message, event.original, url.*, referrer, user agent …, and
the sender's own object under ``PII_SUBTREES``: json.*, kubernetes.audit.*); the kinds found are listed in
``gov.pii`` and each occurrence is masked in place unless masking is switched off (``soc.mask_pii``).
"""

from __future__ import annotations

import ipaddress
import operator
import re
import string
import sys
from dataclasses import dataclass
from typing import Any, Final

import cython
import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from inventory.models import Host, System
from soc.ecs import Event


@dataclass(frozen=True)
class SystemTag:
    system_id: str
    department: str
    mlps_level: int
    data_class: str

    def __post_init__(self) -> None:
        # for _gov_of: the system id, and gov.* but for the system (not a field: equality, hash and repr unchanged)
        template = {"system": None, "department": self.department, "mlps_level": self.mlps_level,
                    "data_class": self.data_class}
        object.__setattr__(self, "_gov", (self.system_id, template))

    def as_gov(self) -> dict[str, Any]:
        return _gov_of(self)


@cython.cfunc
@cython.locals(template=dict, gov=dict)
def _gov_of(tag: SystemTag) -> dict[str, Any]:
    """A new ``gov`` object for ``tag``: every event gets its own (events are changed in place later)."""
    system_id, template = tag._gov
    gov = template.copy()
    gov["system"] = {"id": system_id}
    return gov


@cython.cfunc
@cython.inline
@cython.locals(plain=dict)
def _get(node: Any, key: Any) -> Any:
    """``node.get(key)``, straight from the hash table when ``node`` is exactly a dict (a subclass may override
    ``get``)."""
    if type(node) is dict:
        plain = node
        return plain.get(key)
    return node.get(key)


class RegisterIndex:
    """Host name / address → system classification, loaded once from the register (reload to refresh)."""

    def __init__(self, by_key: dict[str, SystemTag] | None = None):
        self.by_key = by_key or {}

    @classmethod
    def load(cls, session: Session) -> RegisterIndex:
        index: dict[str, SystemTag] = {}
        rows = session.execute(select(Host.name, Host.ipv4, Host.ipv6, System.id, System.department_code,
                                      System.mlps_level, System.data_class).join(System))
        for name, v4, v6, sid, dept, level, data_class in rows:
            tag = SystemTag(sid, dept, level, data_class)
            for key in (name, v4, v6 and str(ipaddress.IPv6Address(v6))):
                if key:
                    index[key.lower()] = tag
        return cls(index)

    def lookup(self, event: Event) -> SystemTag | None:
        """The system of ``event``'s host: by ``host.name``, then ``host.hostname`` (each whole, then its first
        label), then ``host.ip``; else by the sender's address."""
        return _lookup(self.by_key, event)

    def _by_sender(self, event: Event) -> SystemTag | None:
        return _by_sender(self.by_key, event)


@cython.cfunc
def _lookup(by_key: dict[str, SystemTag], event: Event) -> SystemTag | None:
    host = _get(event, "host")
    if not isinstance(host, dict):
        return _by_sender(by_key, event)
    for key in ("name", "hostname"):
        value = _get(host, key)
        if isinstance(value, str):
            tag = _get(by_key, _lower(value))
            if not tag and (type(value) is not str or "." in value):  # no dot: the first label is the name
                tag = _get(by_key, _lower(value.split(".", 1)[0]))
            if tag:
                return tag
    ips = _get(host, "ip")
    for ip in ips if isinstance(ips, list) else [ips]:
        if isinstance(ip, str):
            tag = _get(by_key, _canonical_ip(ip))
            if tag:
                return tag
    return _by_sender(by_key, event)


@cython.cfunc
def _by_sender(by_key: dict[str, SystemTag], event: Event) -> SystemTag | None:
    """The system of the address the record came from (``log.source.address``, set by the syslog receivers):
    for lines whose host is missing or unknown to the register (``localhost``, a bare IP, a typo)."""
    node = _get(event, "log")
    source = _get(node, "source") if isinstance(node, dict) else None
    address = _get(source, "address") if isinstance(source, dict) else None
    return _get(by_key, _canonical_ip(address)) if isinstance(address, str) else None


@cython.cfunc
@cython.locals(plain=str, ch=cython.Py_UCS4)
def _lower(text: Any) -> Any:
    """``text.lower()``, but ``text`` itself (no new string to allocate and hash) when it is a str in lower-case
    ASCII already, as host names mostly are."""
    if cython.compiled and type(text) is str:
        plain = text
        for ch in plain:
            if ch > "\x7f" or "A" <= ch <= "Z":
                return plain.lower()
        return plain
    return text.lower()


_CANONICAL: dict[str, str] = {}  # address as written → as in the index: a sender sends the same few all day
_CANONICAL_MAX = 4096


def _canonical_ip(text: str) -> str:
    """An address as the register index writes it (compressed, lower case); any other text in lower case."""
    canonical = _CANONICAL.get(text) if type(text) is str else None
    if canonical is None:
        try:
            canonical = str(ipaddress.ip_address(text)).lower()
        except ValueError:
            canonical = text.lower()
        if type(text) is str:
            if len(_CANONICAL) >= _CANONICAL_MAX:
                _CANONICAL.clear()
            _CANONICAL[text] = canonical
    return canonical


# --- personal information ---------------------------------------------------------------------------------

# Where free text copied from the source can land, as dotted ECS paths: each is scanned when present (a string,
# or a list of strings). Add a field here when a parser starts copying source text into it.
PII_FIELDS: Final[tuple[str, ...]] = (
    "message", "event.original",
    "url.original", "url.full", "url.path", "url.query", "url.fragment",
    "http.request.referrer", "http.request.body.content", "user_agent.original",
    "error.message", "process.command_line", "process.args",
)
# Subtrees holding the sender's own object as it came (the generic JSON parser's ``json``, the Kubernetes audit
# event): every string leaf at any depth, in objects and lists, is scanned, and so is every integer leaf (a
# JSON ``"phone": 13812345678``; masked, it becomes a string). Object keys are not rewritten.
PII_SUBTREES: Final[tuple[str, ...]] = ("json", "kubernetes.audit")

# A digit run long enough to be PII (an 18-character ID may end in X). The pattern starts with a character class,
# so the regex engine skips everything else at C speed; whether the run stands alone is judged in _pii_run.
_DIGIT_RUN = re.compile("[0-9]" * 11 + "[0-9]*[Xx]?")
# Eleven digits in a row: the shortest PII candidate. Spelled out, the regex engine scans faster than with {11};
# used on short values, where it beats the byte test below.
_CANDIDATE = re.compile("[0-9]" * 11)
# The byte test for longer values: ASCII digits → "1", every other byte → " ", then one substring search. It is
# exact (UTF-8 continuation bytes are ≥ 0x80, never digits) and several times faster than the regex on a log line.
_DIGITS_AS_ONES = bytes(0x31 if 0x30 <= b <= 0x39 else 0x20 for b in range(256))
_ELEVEN_ONES = b"1" * 11
_SHORT = 32  # below this length the regex is the cheaper test
_ASCII_ALNUM = frozenset(string.ascii_letters + string.digits)
_HEX = frozenset(string.hexdigits)
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"  # GB 11643-1999, ISO 7064 MOD 11-2
_MOBILE = re.compile(r"1[3-9][0-9]{9}")

_LEAF = "leaf"
_TREE = "tree"
_Spec = dict[str, "_Spec | str"]


def _compile_spec(fields: tuple[str, ...], subtrees: tuple[str, ...]) -> _Spec:
    """The dotted paths as one nested dict, walked once per event: a key absent from the event costs one lookup."""
    spec: _Spec = {}
    for paths, kind in ((fields, _LEAF), (subtrees, _TREE)):
        for dotted in paths:
            *parents, leaf = dotted.split(".")
            node = spec
            for part in parents:
                child = node.setdefault(part, {})
                if not isinstance(child, dict):
                    raise ValueError(f"PII field {dotted!r} lies inside {part!r}, which is already scanned whole")
                node = child
            if isinstance(node.get(leaf), dict):
                inner = next(iter(node[leaf]))
                raise ValueError(f"PII field {dotted!r} is scanned whole but {dotted + '.' + inner!r} is listed too")
            if leaf in node:
                raise ValueError(f"PII field {dotted!r} is listed twice")
            node[leaf] = kind
    return spec


_SPEC: Final = _compile_spec(PII_FIELDS, PII_SUBTREES)

# _SPEC as the walk _gather takes: a tuple of (key, kind, the walk under key) triples, cheaper to go through than
# a dict's items; kinds as C constants. Keys are interned, as the parsers' are: a lookup then matches by identity.
_NESTED = cython.declare(cython.int, 0)
_KIND_LEAF = cython.declare(cython.int, 1)
_KIND_TREE = cython.declare(cython.int, 2)


def _walk_of(spec: _Spec) -> tuple[tuple[str, int, tuple | None], ...]:
    """``spec`` as the walk of ``_walk``."""
    return tuple((sys.intern(key), _KIND_LEAF, None) if sub is _LEAF else (sys.intern(key), _KIND_TREE, None)
                 if sub is _TREE else (sys.intern(key), _NESTED, _walk_of(sub))  # type: ignore[arg-type]
                 for key, sub in spec.items())


_WALK: Final = _walk_of(_SPEC)


def _has_run(data: bytes) -> bool:
    return data.translate(_DIGITS_AS_ONES).find(_ELEVEN_ONES) >= 0


def _has_candidate_source(text: str) -> bool:
    """Whether ``text`` holds eleven ASCII digits in a row: the cheap test before any PII regex runs."""
    if len(text) < _SHORT:
        return len(text) >= 11 and _CANDIDATE.search(text) is not None
    try:
        return _has_run(text.encode())
    except UnicodeEncodeError:  # a lone surrogate: let the regex decide
        return _CANDIDATE.search(text) is not None


@cython.locals(text=str)
def _has_candidate_compiled(text: str) -> bool:
    """The same test compiled: a C loop over the string's code points (``_eleven_digits``), no encoding, no copy
    (interpreted, this loop is slower than ``_has_candidate_source``)."""
    return _eleven_digits(text)


@cython.cfunc
@cython.returns(cython.bint)
@cython.boundscheck(False)
@cython.wraparound(False)
@cython.locals(text=str, n=cython.Py_ssize_t, i=cython.Py_ssize_t, lo=cython.Py_ssize_t, hi=cython.Py_ssize_t,
               ch=cython.Py_UCS4)
def _eleven_digits(text: str) -> bool:
    """Whether ``text`` holds eleven ASCII digits in a row, reading about one character in eleven where there are
    no digits: such a run covers one of the positions 10, 21, 32 … after the last non-digit seen.

    Invariant: no run of eleven starts before ``i - 10``."""
    n = len(text)  # None: TypeError
    i = 10
    while i < n:
        ch = text[i]
        if not ("0" <= ch <= "9"):
            i += 11
            continue
        lo = i  # back to the start of the digits, at most ten back (then the run is long enough already)
        while lo > i - 10:
            ch = text[lo - 1]
            if not ("0" <= ch <= "9"):
                break
            lo -= 1
        hi = i + 1  # forward until eleven digits or a non-digit
        while hi < n and hi - lo < 11:
            ch = text[hi]
            if not ("0" <= ch <= "9"):
                break
            hi += 1
        if hi - lo >= 11:
            return True
        i = hi + 11  # text[hi] is no digit (or the end): a run starting at or before hi would cover it
    return False


has_candidate = _has_candidate_compiled if cython.compiled else _has_candidate_source


def valid_id_card(number: str) -> bool:
    """18-character 公民身份号码 with a correct check character (GB 11643-1999)."""
    if len(number) != 18 or not number[:17].isdigit():
        return False
    total = sum(map(operator.mul, map(int, number[:17]), _ID_WEIGHTS))
    return _ID_CHECK[total % 11] == number[17].upper()


def luhn_ok(number: str) -> bool:
    """Luhn (ISO/IEC 7812-1) check used by bank card numbers."""
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def classify(run: str) -> str | None:
    """Which kind of PII a digit run is, if any."""
    if len(run) == 18 and valid_id_card(run):
        return "id_card"
    if run[-1] in "Xx":
        return None
    if len(run) == 11 and _MOBILE.fullmatch(run):
        return "mobile"
    if 16 <= len(run) <= 19 and luhn_ok(run):
        return "bank_card"
    return None


def _pii_run(text: str, match: re.Match[str]) -> tuple[int, str] | None:
    """(how many leading characters of ``match`` are not part of the number, its kind) when it is PII, else None.

    The number stands alone: a whole run of 11 to 19 digits with no ASCII letter right after it. In a URL it may
    follow a percent escape whose hex digits are digits too (``%E4%B8%8913812345678`` is 三 then a mobile
    number): read without those digits first, then as it stands."""
    end = match.end()
    if end < len(text) and text[end] in _ASCII_ALNUM:
        return None
    start = match.start()
    run = match.group()
    if start and text[start - 1] == "%":
        kind = _classify_run(run[2:])
        if kind is not None:
            return 2, kind
    elif start > 1 and text[start - 2] == "%" and text[start - 1] in _HEX:
        kind = _classify_run(run[1:])
        if kind is not None:
            return 1, kind
    kind = _classify_run(run)
    return None if kind is None else (0, kind)


def _classify_run(run: str) -> str | None:
    return classify(run) if 11 <= len(run) - (run[-1] in "Xx") <= 19 else None


def _mask(run: str, kind: str) -> str:
    if kind == "mobile":
        return run[:3] + "****" + run[-4:]
    if kind == "id_card":
        return run[:6] + "*" * 8 + run[-4:]
    return run[:6] + "*" * (len(run) - 10) + run[-4:]


def _kinds_in(text: str) -> set[str]:
    """The kinds of PII in ``text`` (no pre-check)."""
    kinds: set[str] = set()
    for match in _DIGIT_RUN.finditer(text):
        found = _pii_run(text, match)
        if found is not None:
            kinds.add(found[1])
    return kinds


def _substitute(text: str, mask: bool, kinds: set[str]) -> str:
    """``text`` with each PII number masked (when ``mask``; else ``text`` itself); the kinds found are added to
    ``kinds``."""
    if not mask:
        kinds |= _kinds_in(text)
        return text

    def replace(match: re.Match[str]) -> str:
        found = _pii_run(text, match)
        if found is None:
            return match.group()
        skip, kind = found
        kinds.add(kind)
        run = match.group()
        return run[:skip] + _mask(run[skip:], kind)

    return _DIGIT_RUN.sub(replace, text)


def scan_pii(text: str, mask: bool) -> tuple[str, set[str]]:
    """The kinds of PII in ``text`` and the text with each occurrence masked (when ``mask``)."""
    kinds: set[str] = set()
    if not text or not has_candidate(text):
        return text, kinds
    return _substitute(text, mask, kinds), kinds


def _gather(node: dict, texts: list[str], trees: list[dict | list],
            slots: list[tuple[dict | list, Any]] | None = None) -> None:
    """The fields of ``_SPEC`` present under ``node``: their strings into ``texts`` (and, given ``slots``, where
    each sits as a (container, key) pair, a list's items one by one), subtrees into ``trees``."""
    _walk(node, _WALK, texts, trees, slots)


@cython.cfunc
@cython.locals(walk=tuple, texts=list, trees=list, entry=tuple, kind=cython.int, exact=cython.bint, plain=dict,
               items=list, i=cython.Py_ssize_t)
def _walk(node: Any, walk: tuple, texts: list[str], trees: list[dict | list],
          slots: list[tuple[dict | list, Any]] | None) -> None:
    """_gather under ``node``. An exact dict or list is read straight from its table; a subclass through its own
    ``get`` and iteration, as it may override them."""
    exact = type(node) is dict
    plain = node if exact else None
    for entry in walk:
        key = entry[0]
        value = plain.get(key) if exact else node.get(key)
        if value is None:
            continue
        kind = entry[1]
        if type(value) is str:
            if kind != _NESTED:
                texts.append(value)
                if slots is not None:
                    slots.append((node, key))
        elif isinstance(value, dict):
            if kind == _KIND_TREE:
                trees.append(value)
            elif kind == _NESTED:
                _walk(value, entry[2], texts, trees, slots)
        elif isinstance(value, list):
            if kind == _KIND_TREE:
                trees.append(value)
            elif kind == _KIND_LEAF:
                if type(value) is list:
                    items = value
                    for i in range(len(items)):
                        item = items[i]
                        if type(item) is str:
                            texts.append(item)
                            if slots is not None:
                                slots.append((items, i))
                else:
                    texts.extend([item for item in value if type(item) is str])
                    if slots is not None:
                        slots.extend((value, i) for i, item in enumerate(value) if type(item) is str)


def _mask_slots(slots: list[tuple[dict | list, Any]], kinds: set[str]) -> None:
    """Mask the PII of each slot's string in place; a string object met twice (a parser often stores one line as
    both ``message`` and ``event.original``) is scanned once."""
    done: dict[int, tuple[str, str]] = {}  # id(original) → (original, masked); the original is kept alive
    for container, key in slots:
        value = container[key]
        seen = done.get(id(value))
        if seen is None or seen[0] is not value:
            seen = (value, _substitute(value, True, kinds) if has_candidate(value) else value)
            done[id(value)] = seen
        container[key] = seen[1]


def _tree_may_hold_pii(root: dict | list) -> bool:
    """One test for a whole subtree, from its JSON text: orjson writes ASCII digits in strings and integers as they
    are, so the numbers of the leaves appear in it with the same neighbours (quotes and commas being neither
    letters nor digits). Only a ``\\u00XX`` escape of a control character can glue hex digits to a number."""
    try:
        blob = orjson.dumps(root)
    except (orjson.JSONEncodeError, TypeError):  # integers past 64 bits, lone surrogates: walk it
        return True
    if not _has_run(blob):
        return False
    return b"\\u00" in blob or bool(_kinds_in(blob.decode()))


def _scan_tree(root: dict | list, mask: bool, kinds: set[str]) -> None:
    """Every string and integer leaf under ``root``, iteratively (a deep document cannot exhaust the stack)."""
    stack: list[dict | list] = [root]
    while stack:
        node = stack.pop()
        for key, value in node.items() if isinstance(node, dict) else enumerate(node):
            kind = type(value)
            if kind is str:
                if has_candidate(value):
                    masked = _substitute(value, mask, kinds)
                    if masked is not value:
                        node[key] = masked  # type: ignore[index]
            elif kind is int:
                if 10**10 <= value < 10**19:
                    run = str(value)
                    pii = classify(run)
                    if pii is not None:
                        kinds.add(pii)
                        if mask:
                            node[key] = _mask(run, pii)  # type: ignore[index]
            elif isinstance(value, (dict, list)):
                stack.append(value)


def scan_event_pii(event: Event, mask: bool) -> set[str]:
    """The kinds of PII in the free-text fields of ``event`` (``PII_FIELDS``, ``PII_SUBTREES``), masked in place
    when ``mask``.

    The common event holds no PII, so the string fields present are first tested for a candidate together
    (``_texts_pii``), and each subtree in one pass over its JSON text; fields are scanned one by one only when that
    pass found PII."""
    kinds = _scan_event_pii(event, mask)
    return set() if kinds is None else kinds


@cython.cfunc
@cython.locals(texts=list, trees=list, kinds=set)
def _scan_event_pii(event: Event, mask: Any) -> set[str] | None:
    """scan_event_pii, but None rather than an empty set (the common event: no set to make)."""
    texts = []
    trees = []
    _walk(event, _WALK, texts, trees, None)
    kinds = None
    if texts:
        found = _texts_pii(texts)
        if found and mask:  # rare: walk again, this time noting where each string sits, and mask there
            kinds = set()
            slots: list[tuple[dict | list, Any]] = []
            _walk(event, _WALK, [], [], slots)
            _mask_slots(slots, kinds)
        elif found:
            kinds = set()
            kinds |= found
    for tree in trees:
        if _tree_may_hold_pii(tree):
            if kinds is None:
                kinds = set()
            _scan_tree(tree, mask, kinds)
    return kinds


@cython.cfunc
def _texts_pii(texts: list[str]) -> set[str] | None:
    """The kinds of PII in ``texts`` (None when none has a candidate; a candidate alone is often a timestamp). A
    string met twice in a row (``message`` is often ``event.original`` itself) is tested once."""
    if cython.compiled:
        found: set[str] | None = None
        last = None
        for text in texts:
            if text is not last and _eleven_digits(text):
                found = (found or set()) | _kinds_in(text)
            last = text
        return found
    joined = texts[0] if len(texts) == 1 else "\n".join(texts)  # one pass: faster than a loop when interpreted
    return _kinds_in(joined) if has_candidate(joined) else None


class Enricher:
    """Adds gov.* from the register and tags/masks PII, in place."""

    def __init__(self, index: RegisterIndex, mask_pii: bool = True):
        self.index = index
        self.mask_pii = mask_pii

    def __call__(self, event: Event) -> Event:
        return _enrich(event, self.index, self.mask_pii)


@cython.cfunc
@cython.locals(plain=dict)
def _enrich(event: Event, index: RegisterIndex, mask: Any) -> Event:
    # gov.* is Yunshu's own classification: whatever a sender put there is dropped, or a JSON sender could
    # file its events under another department's scope
    if type(event) is dict:
        plain = event
        plain.pop("gov", None)
    else:
        event.pop("gov", None)
    # the register's own index and tags directly; another kind (a subclass) through its methods
    tag = _lookup(index.by_key, event) if type(index) is RegisterIndex else index.lookup(event)
    if not tag:
        gov = {}
    elif type(tag) is SystemTag:
        gov = _gov_of(tag)
    else:
        gov = tag.as_gov()
    kinds = _scan_event_pii(event, mask)
    if kinds:
        gov["pii"] = sorted(kinds)
    if gov:
        event["gov"] = gov
    _network_type(event)
    return event


@cython.cfunc
def _network_type(event: Event) -> None:
    """ECS ``network.type`` (ipv4/ipv6) from the source address when the parser did not set it: the IPv6 share
    of the traffic is a KPI of the dual-stack migration."""
    source = _get(event, "source")
    ip = _get(source, "ip") if isinstance(source, dict) else None
    if not isinstance(ip, str):
        return
    network = _get(event, "network")
    if isinstance(network, dict):
        if "type" in network:
            return
    elif network is None:
        network = event["network"] = {}
    else:
        return
    network["type"] = "ipv6" if ":" in ip else "ipv4"
