"""Enrichment: register lookup by host name and IPv4/IPv6, PII tagging and masking."""

from __future__ import annotations

import copy
import ipaddress
import re
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from core.runtime import Runtime
from inventory.models import Host, System
from soc import enrich
from soc.enrich import (
    Enricher,
    RegisterIndex,
    _has_candidate_compiled,
    _has_candidate_source,
    luhn_ok,
    scan_pii,
    valid_id_card,
)
from tests.conftest import load_sample, make_runtime
from tests.soc.source_modules import from_source


@pytest.fixture(scope="module")
def sample_rt(tmp_path_factory: pytest.TempPathFactory) -> Runtime:
    rt = make_runtime(tmp_path_factory.mktemp("enrich") / "var")
    load_sample(rt)
    return rt


@pytest.fixture(scope="module")
def index(sample_rt: Runtime) -> RegisterIndex:
    with sample_rt.sessions() as s:
        return RegisterIndex.load(s)


def _host(sample_rt: Runtime, with_v6: bool) -> tuple[Host, System]:
    with sample_rt.sessions() as s:
        stmt = select(Host, System).join(System).where(Host.ipv6.is_not(None) if with_v6 else Host.ipv4.is_not(None))
        return s.execute(stmt.order_by(Host.name)).first()  # type: ignore[return-value]


@pytest.mark.parametrize("how", ["name", "fqdn", "ipv4", "ipv6"])
def test_register_lookup(sample_rt: Runtime, index: RegisterIndex, how: str) -> None:
    host, system = _host(sample_rt, with_v6=how == "ipv6")
    if how == "name":
        event = {"host": {"name": host.name.upper()}}
    elif how == "fqdn":
        event = {"host": {"hostname": f"{host.name}.gov.example"}}
    elif how == "ipv4":
        event = {"host": {"ip": [host.ipv4]}}
    else:  # written differently from the register: upper case, and the result must still match
        event = {"host": {"ip": host.ipv6.upper()}}
    Enricher(index)(event)
    assert event["gov"] == {"system": {"id": system.id}, "department": system.department_code,
                            "mlps_level": system.mlps_level, "data_class": system.data_class}


def test_unknown_host_gets_no_gov(index: RegisterIndex) -> None:
    event = {"host": {"name": "nobody-here"}, "message": "hello"}
    assert "gov" not in Enricher(index)(event)


def test_senders_cannot_set_gov_themselves(sample_rt: Runtime, index: RegisterIndex) -> None:
    """A JSON sender's own gov.* is dropped: only the register decides department scope and classification."""
    forged = {"host": {"name": "nobody-here"}, "gov": {"department": "GAJ", "mlps_level": 4}}
    assert "gov" not in Enricher(index)(forged)
    host, system = _host(sample_rt, with_v6=False)
    known = {"host": {"name": host.name}, "gov": {"department": "SOMEONE-ELSE", "pii": ["id_card"]}}
    assert Enricher(index)(known)["gov"]["department"] == system.department_code
    assert "pii" not in known["gov"]


def test_network_type_from_the_source_address(index: RegisterIndex) -> None:
    assert Enricher(index)({"source": {"ip": "2001:db8::1"}})["network"] == {"type": "ipv6"}
    assert Enricher(index)({"source": {"ip": "198.18.0.1"}, "network": {"transport": "tcp"}})["network"] == {
        "transport": "tcp", "type": "ipv4"}
    assert Enricher(index)({"source": {"ip": "::1"}, "network": {"type": "ipv4"}})["network"]["type"] == "ipv4"


def test_check_digits() -> None:
    assert valid_id_card("11010519491231002X")
    assert not valid_id_card("110105194912310021")
    assert luhn_ok("6222021234567890128") and not luhn_ok("6222021234567890121")


def test_pii_masked_in_message_and_original(index: RegisterIndex) -> None:
    raw = "查询 身份证 11010519491231002X 手机 13812345678 卡号 6222021234567890128 订单 12345678901"
    event = {"message": raw, "event": {"original": f"<13>Nov 22 app: {raw}"}}
    Enricher(index)(event)
    assert event["gov"]["pii"] == ["bank_card", "id_card", "mobile"]
    for secret in ("11010519491231002X", "13812345678", "6222021234567890128"):
        assert secret not in event["message"] and secret not in event["event"]["original"]
    assert "110105********002X" in event["message"] and "138****5678" in event["message"]
    assert "12345678901" in event["message"]  # not a mobile number (12…), not Luhn-valid length: kept


def test_masking_can_be_switched_off(index: RegisterIndex) -> None:
    event = {"message": "tel 13812345678"}
    Enricher(index, mask_pii=False)(event)
    assert event["message"] == "tel 13812345678" and event["gov"]["pii"] == ["mobile"]


def test_no_false_positives_on_ordinary_numbers() -> None:
    for text in ("pid 123456", "ts 1700000000123", "id 110105194912310021", "port 8080 len 12345678"):
        assert scan_pii(text, True) == (text, set())


def test_syslog_sender_address_is_the_fallback(sample_rt: Runtime, index: RegisterIndex, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A line naming no registered host (``localhost``) is attributed to the system of the address it came from;
    a known host name still wins over the sender (a relay forwards other hosts' lines)."""
    from soc.deadletter import DeadLetterStore
    from soc.pipeline import Pipeline, RawRecord
    from soc.spool import source_sender
    from soc.store.sqlite import SQLiteStore

    host, system = _host(sample_rt, with_v6=False)
    other, other_system = _host(sample_rt, with_v6=True)
    assert other_system.id != system.id
    assert source_sender(f"syslog|udp:{host.ipv4}") == host.ipv4 and source_sender("json|http:alice") is None
    pipeline = Pipeline(SQLiteStore(tmp_path / "e.db"), DeadLetterStore(tmp_path / "d.db"), Enricher(index))
    lines = [b"<38>Nov 22 10:00:00 localhost sshd[1]: Failed password for root from 203.0.113.9 port 22 ssh2",
             f"<38>Nov 22 10:00:01 {other.name} sshd[1]: Accepted password for ops".encode()]
    prepared = pipeline.prepare([RawRecord(f"k{i}", raw) for i, raw in enumerate(lines)], "syslog", host.ipv4)
    (_, local), (_, relayed) = prepared.events
    assert local["log"]["source"] == {"address": host.ipv4} and local["gov"]["system"]["id"] == system.id
    assert relayed["gov"]["system"]["id"] == other_system.id
    unknown = pipeline.prepare([RawRecord("k9", lines[0])], "syslog", "203.0.113.200").events[0][1]
    assert "gov" not in unknown


@given(st.text(alphabet=st.sampled_from("0123456789Xx -%a\u4e00\uff11\u0661\ud800"), max_size=80))
def test_both_candidate_tests_agree(text: str) -> None:
    """The compiled loop and the interpreted byte test find the same eleven-digit runs (ASCII digits only: a
    full-width ``１`` or an Arabic-Indic ``١`` is no candidate; lone surrogates are read too)."""
    expected = re.search(r"[0-9]{11}", text) is not None
    assert _has_candidate_compiled(text) is expected
    assert _has_candidate_source(text) is expected


# --- the compiled walk, lookup and gov against the plain code they replace -----------------------------------

SOURCE = from_source(enrich)
MODULES = pytest.mark.parametrize("mod", [enrich, SOURCE], ids=["imported", "source"])


class ShoutingDict(dict):
    """A dict subclass whose own ``get`` changes what it returns: the walk must go through it."""

    def get(self, key, default=None):  # type: ignore[no-untyped-def]
        value = super().get(key, default)
        return value + "!" if type(value) is str else value


class BackwardsList(list):
    """A list subclass iterating backwards: the walk must iterate it as it says."""

    def __iter__(self):  # type: ignore[no-untyped-def]
        return list.__reversed__(self)

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return BackwardsList, (list(list.__iter__(self)),)


class KeptList(list):
    """A list subclass that changes nothing."""


class LoudStr(str):
    """A str subclass with its own ``lower``."""

    def lower(self) -> str:
        return "loud-" + str.lower(self)


def _reference_gather(mod: ModuleType, node: Any, spec: dict, texts: list, trees: list, slots: list | None) -> None:
    """The straightforward walk of the nested-dict spec (soc.enrich before the compiled walk)."""
    for key, sub in spec.items():
        value = node.get(key)
        if value is None:
            continue
        if type(value) is str:
            if sub is mod._LEAF or sub is mod._TREE:
                texts.append(value)
                if slots is not None:
                    slots.append((node, key))
        elif isinstance(value, dict):
            if sub is mod._TREE:
                trees.append(value)
            elif sub is not mod._LEAF:
                _reference_gather(mod, value, sub, texts, trees, slots)
        elif isinstance(value, list):
            if sub is mod._TREE:
                trees.append(value)
            elif sub is mod._LEAF:
                texts.extend([item for item in value if type(item) is str])
                if slots is not None:
                    slots.extend((value, i) for i, item in enumerate(value) if type(item) is str)


_TEXT = st.text(alphabet=st.sampled_from("ab 1X\u4e00"), max_size=4) | st.sampled_from(
    ["13812345678", "tel 13812345678", "11010519491231002X", "6222021234567890128", "12345678901"])
_SCALAR = st.none() | _TEXT | st.builds(LoudStr, _TEXT) | st.integers(-5, 13812345678) | st.booleans()
_ITEMS = st.lists(_SCALAR | st.dictionaries(st.sampled_from("ab"), _SCALAR, max_size=2), max_size=4)
_ANY = st.recursive(_SCALAR, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
    st.sampled_from(["message", "a", "json", "phone"]), inner, max_size=3), max_leaves=8)


def _node(spec: dict | str, lists: st.SearchStrategy[list]) -> st.SearchStrategy[Any]:
    """Values for a place of the PII spec: mostly shaped like it (any of its keys, in plain dicts or subclasses),
    sometimes anything else."""
    if not isinstance(spec, dict):
        return _SCALAR | lists | _ANY
    shaped = st.fixed_dictionaries({}, optional={key: _node(sub, lists) for key, sub in spec.items()} | {
        "other": _ANY}).flatmap(lambda d: st.sampled_from([dict(d), ShoutingDict(d)]))
    return st.one_of(shaped, shaped, shaped, _SCALAR, lists)


_EVENTS = _node(enrich._SPEC, _ITEMS | _ITEMS.map(KeptList) | _ITEMS.map(BackwardsList))
# A list iterating out of order sends the masking to the wrong items (slots are numbered as it iterates): a dict
# item then reaches has_candidate, a TypeError compiled and False from source, as ever. Not for this comparison.
_IN_ORDER_EVENTS = _node(enrich._SPEC, _ITEMS | _ITEMS.map(KeptList))


@MODULES
@given(event=_EVENTS)
def test_gather_matches_the_plain_walk(mod: ModuleType, event: Any) -> None:
    """Same strings in the same order, same subtrees, same slots as the nested-dict walk: plain dicts and lists
    read directly, subclasses through their own ``get`` and iteration, values of any other type skipped."""
    for with_slots in (False, True):
        got: tuple[list, list, list | None] = ([], [], [] if with_slots else None)
        want: tuple[list, list, list | None] = ([], [], [] if with_slots else None)
        try:
            _reference_gather(mod, event, mod._SPEC, *want)
        except AttributeError:  # not a mapping at the top: the walk fails the same way
            with pytest.raises(AttributeError):
                mod._gather(event, *got)
            return
        mod._gather(event, *got)
        assert got[0] == want[0] and [type(t) for t in got[0]] == [type(t) for t in want[0]]
        assert [id(t) for t in got[1]] == [id(t) for t in want[1]]
        if with_slots:
            assert [(id(c), k) for c, k in got[2]] == [(id(c), k) for c, k in want[2]]  # type: ignore[union-attr]


@given(event=_IN_ORDER_EVENTS.filter(lambda e: isinstance(e, dict)), mask=st.booleans())
def test_compiled_and_source_enrich_alike(index: RegisterIndex, event: dict, mask: bool) -> None:
    """The same event enriched by the imported module and by its source comes out the same."""
    first, second = copy.deepcopy(event), copy.deepcopy(event)
    source_index = SOURCE.RegisterIndex({k: SOURCE.SystemTag(t.system_id, t.department, t.mlps_level, t.data_class)
                                        for k, t in index.by_key.items()})
    Enricher(index, mask_pii=mask)(first)
    SOURCE.Enricher(source_index, mask_pii=mask)(second)
    assert first == second


def _reference_lookup(by_key: dict, event: Any) -> Any:
    """RegisterIndex.lookup as plain Python (before the compiled one)."""
    def canonical(text: str) -> str:
        try:
            return str(ipaddress.ip_address(text)).lower()
        except ValueError:
            return text.lower()

    def by_sender() -> Any:
        node = event.get("log")
        source = node.get("source") if isinstance(node, dict) else None
        address = source.get("address") if isinstance(source, dict) else None
        return by_key.get(canonical(address)) if isinstance(address, str) else None

    host = event.get("host")
    if not isinstance(host, dict):
        return by_sender()
    for key in ("name", "hostname"):
        value = host.get(key)
        if isinstance(value, str):
            tag = by_key.get(value.lower()) or by_key.get(value.split(".", 1)[0].lower())
            if tag:
                return tag
    ips = host.get("ip")
    for ip in ips if isinstance(ips, list) else [ips]:
        if isinstance(ip, str):
            tag = by_key.get(canonical(ip))
            if tag:
                return tag
    return by_sender()


# Kelvin sign and dotted capital I: their lower() is not what an ASCII rule would give
_NAME = st.text(alphabet=st.sampled_from("abWEB01-.\u212a\u0130k\u00e9"), min_size=1, max_size=8)
_ADDRESS = st.sampled_from(["198.18.0.1", "198.018.0.1", "2001:DB8::1", "2001:0db8:0000:0000:0000:0000:0000:0001",
                            "::FFFF:198.18.0.1", "fe80::1%ETH0", "not-an-ip", "LocalHost", ""])
_NAME_VALUE = st.none() | st.integers() | _NAME | _ADDRESS | st.builds(LoudStr, _NAME)


_SPELLINGS = (str, str.upper, str.title, str.swapcase, lambda s: s + ".gov.example", lambda s: s.upper() + ".X",
              LoudStr)


@MODULES
@given(keys=st.lists(_NAME | _ADDRESS | _NAME.map(str.lower) | _ADDRESS.map(str.lower), min_size=1, max_size=8),
       data=st.data(), sender=st.none() | _ADDRESS | _NAME, shouting=st.booleans())
def test_lookup_matches_the_plain_lookup(mod: ModuleType, keys: list[str], data: st.DataObject, sender: Any,
                                         shouting: bool) -> None:
    """Upper-case, dotted and non-ASCII names, str subclasses, IPv4/IPv6 written any way, the sender's address
    as the fallback; keys as the register writes them (lower case, canonical addresses) or not."""
    known = st.tuples(st.sampled_from(keys), st.sampled_from(_SPELLINGS)).map(lambda pair: pair[1](pair[0]))
    value = _NAME_VALUE | known
    host = data.draw(st.none() | _NAME | known | st.fixed_dictionaries({}, optional={
        "name": value, "hostname": value, "ip": value | st.lists(value, max_size=3)}))
    by_key = {key: mod.SystemTag(f"S{i}", "D", 2, "general") for i, key in enumerate(keys)}
    for key in list(by_key):  # the register's canonical spelling of the addresses too
        by_key.setdefault(mod._canonical_ip(key), mod.SystemTag(f"C{key}", "D", 3, "core"))
    if shouting and isinstance(host, dict):
        host = ShoutingDict(host)
    event: dict[str, Any] = {} if host is None else {"host": host}
    if sender is not None:
        event["log"] = {"source": {"address": sender}}
    want = _reference_lookup(by_key, event)
    assert mod.RegisterIndex(by_key).lookup(event) is want
    enriched = mod.Enricher(mod.RegisterIndex(by_key))(event)
    assert enriched.get("gov", {}).get("system") == (None if want is None else {"id": want.system_id})


def test_addresses_are_canonical_and_the_memo_is_bounded() -> None:
    assert enrich._canonical_ip("2001:0DB8:0:0::1") == "2001:db8::1"
    assert enrich._canonical_ip("2001:0DB8:0:0::1") == "2001:db8::1"  # from the memo
    assert enrich._canonical_ip("Relay-01") == "relay-01"
    assert enrich._canonical_ip(LoudStr("Relay-01")) == "loud-relay-01"  # a subclass's own lower, never memoised
    for i in range(enrich._CANONICAL_MAX + 10):
        enrich._canonical_ip(f"10.{i // 65536}.{i // 256 % 256}.{i % 256}")
    assert len(enrich._CANONICAL) <= enrich._CANONICAL_MAX


@MODULES
def test_events_never_share_gov(mod: ModuleType) -> None:
    """Each event gets its own gov.* objects from the same tag: later changes to one event touch no other."""
    tag = mod.SystemTag("SYS-1", "GAJ", 3, "important")
    index = mod.RegisterIndex({"web01": tag})
    enricher = mod.Enricher(index)
    first, second = enricher({"host": {"name": "web01"}}), enricher({"host": {"name": "WEB01.gov.example"}})
    assert first["gov"] == second["gov"] == tag.as_gov() == {
        "system": {"id": "SYS-1"}, "department": "GAJ", "mlps_level": 3, "data_class": "important"}
    assert first["gov"] is not second["gov"] and first["gov"]["system"] is not second["gov"]["system"]
    first["gov"]["system"]["id"] = "changed"
    first["gov"]["department"] = "changed"
    first["gov"]["pii"] = ["mobile"]
    assert second["gov"] == enricher({"host": {"name": "web01"}})["gov"] == tag.as_gov()
    assert tag.as_gov() is not tag.as_gov()
    assert tag == mod.SystemTag("SYS-1", "GAJ", 3, "important") and "_gov" not in repr(tag)


@MODULES
def test_other_indexes_and_tags_are_asked_through_their_methods(mod: ModuleType) -> None:
    """An index of another kind (a subclass too) is asked by its lookup, a tag of another kind by its as_gov."""
    class OwnTag:
        def as_gov(self) -> dict[str, Any]:
            return {"department": "OWN"}

    class OwnIndex(mod.RegisterIndex):  # type: ignore[name-defined,misc]
        def lookup(self, event: dict) -> Any:
            return OwnTag()

    class Duck:
        def lookup(self, event: dict) -> Any:
            return mod.SystemTag("DUCK", "D", 1, "general")

    assert mod.Enricher(OwnIndex())({"host": {"name": "x"}})["gov"] == {"department": "OWN"}
    assert mod.Enricher(Duck())({})["gov"]["system"] == {"id": "DUCK"}


@MODULES
def test_no_pii_gives_a_new_empty_set(mod: ModuleType) -> None:
    found = mod.scan_event_pii({"message": "nothing here"}, True)
    assert found == set()
    found.add("mobile")
    assert mod.scan_event_pii({"message": "nothing here"}, True) == set()
    assert mod.scan_event_pii({"json": {"phone": 13812345678}}, True) == {"mobile"}


@MODULES
def test_dict_subclass_events_use_their_own_get(mod: ModuleType) -> None:
    """network.type and the host come from the event's own ``get`` when it overrides it."""
    tag = mod.SystemTag("SYS-1", "GAJ", 3, "important")
    event = ShoutingDict({"host": ShoutingDict({"name": "web01"}), "source": {"ip": "2001:db8::1"},
                          "message": "tel 13812345678"})
    mod.Enricher(mod.RegisterIndex({"web01!": tag}))(event)
    assert event["gov"]["system"] == {"id": "SYS-1"} and event["network"] == {"type": "ipv6"}
    assert event["gov"]["pii"] == ["mobile"] and event["message"] == "tel 138****5678"


@pytest.mark.parametrize("fill", ["a", " ", "\u0661", "\uff11", "\u4e00", "%"])
def test_candidate_runs_of_every_length_at_every_offset(fill: str) -> None:
    """The skipping scan finds a run of eleven wherever it starts and ends, and no shorter run: one run, or two
    split by one or two other characters."""
    for before in range(0, 23):
        for first in range(0, 13):
            for gap in (1, 2):
                for second in range(0, 13):
                    for after in range(0, 3):
                        text = fill * before + "1" * first + fill * gap + "2" * second + fill * after
                        expected = re.search(r"[0-9]{11}", text) is not None
                        assert _has_candidate_compiled(text) is expected, text
                        assert SOURCE._has_candidate_compiled(text) is expected, text
