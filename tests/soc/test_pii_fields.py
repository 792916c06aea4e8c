"""PII in every free-text field of an event: URLs of access logs, json.* of JSON events, event.original.

Events come from the real parsers (soc.parsers.parse) and, for the stored case, go through the embedded store.
"""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path

import pytest

from soc.ecs import event_id
from soc.enrich import (
    _CANDIDATE,
    PII_FIELDS,
    PII_SUBTREES,
    Enricher,
    RegisterIndex,
    _compile_spec,
    has_candidate,
    scan_event_pii,
)
from soc.parsers import parse
from soc.store.base import SearchQuery
from soc.store.sqlite import SQLiteStore

ID_CARD = "11010519491231002X"
MOBILE = "13812345678"
CARD = "6222021234567890128"
SECRETS = (ID_CARD, MOBILE, CARD)
ACCESS = ('198.18.0.7 - - [22/Nov/2026:12:15:51 +0800] "GET /api/user?idcard={id}&phone={mobile} HTTP/1.1" 200 512 '
          '"https://portal.gov.example/profile?card={card}" "Mozilla/5.0 (Windows NT 10.0) tel/{mobile}"')


def _enrich(event: dict, mask: bool = True) -> dict:
    return Enricher(RegisterIndex(), mask_pii=mask)(event)


def _unchanged(event: dict, mask: bool = True) -> bool:
    """Whether enrichment leaves the event as it was, apart from network.type (derived from source.ip)."""
    before = copy.deepcopy(event)
    _enrich(event, mask)
    if "network" not in before:
        event.pop("network", None)
    return event == before


def _access_line() -> str:
    return ACCESS.format(id=ID_CARD, mobile=MOBILE, card=CARD)


def _leaves(node: object) -> list[object]:
    if isinstance(node, dict):
        return [leaf for value in node.values() for leaf in _leaves(value)]
    if isinstance(node, list):
        return [leaf for value in node for leaf in _leaves(value)]
    return [node]


def test_required_fields_are_listed() -> None:
    for name in ("message", "event.original", "url.original", "url.query", "url.path", "http.request.referrer",
                 "user_agent.original"):
        assert name in PII_FIELDS
    assert "json" in PII_SUBTREES


@pytest.mark.parametrize("fmt", ["nginx", "apache"])
def test_access_log_url_referrer_and_agent_are_masked(fmt: str) -> None:
    event = _enrich(parse(_access_line(), fmt))
    assert event["gov"]["pii"] == ["bank_card", "id_card", "mobile"]
    url = event["url"]
    assert url["query"] == "idcard=110105********002X&phone=138****5678"
    assert url["original"] == "/api/user?idcard=110105********002X&phone=138****5678"
    assert url["path"] == "/api/user"
    assert event["http"]["request"]["referrer"] == "https://portal.gov.example/profile?card=622202*********0128"
    assert event["user_agent"]["original"] == "Mozilla/5.0 (Windows NT 10.0) tel/138****5678"
    assert event["http"]["request"]["method"] == "GET" and event["http"]["response"]["status_code"] == 200
    for secret in SECRETS:
        assert secret not in json.dumps(event)


def test_stored_access_event_holds_no_cleartext_pii(tmp_path: Path) -> None:
    line = _access_line()
    store = SQLiteStore(tmp_path / "events.db")
    try:
        store.write([(event_id("test:1", line), _enrich(parse(line, "nginx")))])
        (_, stored), = store.search(SearchQuery()).hits
    finally:
        store.close()
    assert stored["url"]["query"] == "idcard=110105********002X&phone=138****5678"
    assert stored["gov"]["pii"] == ["bank_card", "id_card", "mobile"]
    on_disk = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    assert b"/api/user?idcard=" in on_disk  # the document is there …
    for secret in SECRETS:
        assert secret.encode() not in on_disk  # … without the numbers, in any table or index


def test_percent_encoded_text_before_a_number() -> None:
    """张三 percent-encoded right before the mobile number: the escapes' hex digits are not part of it."""
    line = ('198.18.0.7 - - [22/Nov/2026:12:15:51 +0800] "GET /search?q=%E5%BC%A0%E4%B8%89' + MOBILE
            + '&id=%20' + ID_CARD + ' HTTP/1.1" 200 5 "-" "-"')
    event = _enrich(parse(line, "nginx"))
    assert event["url"]["query"] == "q=%E5%BC%A0%E4%B8%89138****5678&id=%20110105********002X"
    assert event["gov"]["pii"] == ["id_card", "mobile"]
    # %B8 ends in a hex letter, so only one digit (8) is the escape's
    assert scan_event_pii(ev := {"url": {"query": "q=%E4%B8" + MOBILE}}, True) == {"mobile"}
    assert ev["url"]["query"] == "q=%E4%B8138****5678"


def _json_line() -> str:
    doc = {"ts": 1700000000123, "level": "info", "msg": "order created",
           "order": {"id": 123456789012, "customer": {"contacts": [{"type": "mobile", "value": MOBILE}],
                                                     "idcard": f"证件 {ID_CARD}"},
                     "payment": {"card": int(CARD)}}}
    return json.dumps(doc, ensure_ascii=False)


def test_json_event_nested_fields_and_original_masked() -> None:
    event = parse(_json_line(), "json")
    assert event["message"] == "order created"  # no PII in the message itself
    _enrich(event)
    assert event["gov"]["pii"] == ["bank_card", "id_card", "mobile"]
    order = event["json"]["order"]
    assert order["customer"]["contacts"][0]["value"] == "138****5678"
    assert order["customer"]["idcard"] == "证件 110105********002X"
    assert order["payment"]["card"] == "622202*********0128"  # a JSON number, masked into a string
    assert order["id"] == 123456789012 and event["json"]["ts"] == 1700000000123  # not PII: kept as numbers
    original = event["event"]["original"]
    assert '"value": "138****5678"' in original and "110105********002X" in original
    for secret in SECRETS:
        assert secret not in original and secret not in json.dumps(event, ensure_ascii=False)


def test_masking_off_tags_but_keeps_every_value() -> None:
    for line, fmt in ((_json_line(), "json"), (_access_line(), "nginx")):
        event = parse(line, fmt)
        before = copy.deepcopy(event)
        _enrich(event, mask=False)
        assert event.pop("gov")["pii"] == ["bank_card", "id_card", "mobile"]
        event.pop("network", None)
        before.pop("network", None)
        assert event == before


def test_kubernetes_audit_request_object_is_masked() -> None:
    line = json.dumps({
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "auditID": "a1", "verb": "create",
        "requestURI": f"/api/v1/namespaces/gov/configmaps?owner={MOBILE}", "user": {"username": "alice"},
        "sourceIPs": ["198.18.0.9"], "objectRef": {"resource": "configmaps", "namespace": "gov"},
        "requestObject": {"data": {"contact": MOBILE, "ids": [ID_CARD]}},
        "stageTimestamp": "2026-11-22T04:15:51.000000Z",
    })
    event = _enrich(parse(line, "json"))
    assert event["gov"]["pii"] == ["id_card", "mobile"]
    assert event["kubernetes"]["audit"]["requestObject"]["data"] == {"contact": "138****5678",
                                                                     "ids": ["110105********002X"]}
    assert event["url"]["query"] == "owner=138****5678"
    assert MOBILE not in json.dumps(event) and ID_CARD not in json.dumps(event)


@pytest.mark.parametrize("value", [
    "110105194912310021",     # 18 digits, wrong check digit
    "6222021234567890121",    # 19 digits failing Luhn
    "1700000000123",          # epoch milliseconds
    "12345678901",            # 11 digits, not a mobile prefix
    "13812345678abc",         # glued to letters: not a number standing alone
    "138123456789",           # 12 digits: no kind
])
def test_numbers_that_are_not_pii_stay(value: str) -> None:
    line = (f'198.18.0.7 - - [22/Nov/2026:12:15:51 +0800] "GET /api/x?n={value} HTTP/1.1" 200 5 '
            f'"https://ref.example/?n={value}" "agent {value}"')
    event = parse(line, "nginx")
    assert _unchanged(event) and "gov" not in event
    doc = parse(json.dumps({"msg": "ok", "a": {"b": [value, {"c": value}]}}), "json")
    assert _unchanged(doc) and "gov" not in doc


def test_numbers_in_json_that_are_not_pii_stay() -> None:
    doc = parse(json.dumps({"n": 6222021234567890121, "m": 110105194912310021, "b": True, "t": 1700000000123}),
                "json")
    assert _unchanged(doc) and "gov" not in doc
    # a float or a negative number is not a mobile number as a JSON value (in the raw text it reads as one)
    doc = parse(json.dumps({"f": 13812345678.5, "neg": -13812345678}), "json")
    assert scan_event_pii({"json": doc["json"]}, True) == set()
    assert doc["json"] == {"f": 13812345678.5, "neg": -13812345678}


def test_absent_and_odd_shaped_fields_are_skipped() -> None:
    event = {"url": "not an object", "http": {"request": None}, "process": {"args": ["run", MOBILE, 7]},
             "json": [MOBILE, {"x": None}], "error": {"message": ["not", "a", "string"]}}
    assert scan_event_pii(event, True) == {"mobile"}
    assert event["process"]["args"] == ["run", "138****5678", 7]
    assert event["json"] == ["138****5678", {"x": None}]
    assert event["url"] == "not an object" and event["error"] == {"message": ["not", "a", "string"]}
    assert scan_event_pii({}, True) == set()


def test_same_string_as_message_and_original_is_masked_in_both() -> None:
    line = f"<13>Nov 22 12:15:51 web01 app: 用户手机 {MOBILE}"
    event = _enrich(parse(line, "syslog"))
    assert MOBILE not in event["message"] and MOBILE not in event["event"]["original"]
    assert event["event"]["original"].endswith("用户手机 138****5678")


def test_deep_and_unusual_json_values() -> None:
    """Nesting deeper than the stack, a lone surrogate and a control character glued to a number: found all the
    same (orjson cannot write the first two, and its \\u0001 escape would hide the last)."""
    deep: dict = {"v": MOBILE}
    for _ in range(5000):
        deep = {"d": deep}
    event = {"json": {"deep": deep, "odd": f"\ud800 {MOBILE}", "ctl": f"\x01{ID_CARD}", "big": 2**70}}
    assert scan_event_pii(event, True) == {"id_card", "mobile"}
    node = event["json"]["deep"]
    while "d" in node:
        node = node["d"]
    assert node["v"] == "138****5678"
    assert event["json"]["odd"] == "\ud800 138****5678" and event["json"]["ctl"] == "\x01110105********002X"
    assert scan_event_pii({"json": {"ctl": "\x01" + "1" * 15}}, True) == set()


def test_field_list_is_checked() -> None:
    with pytest.raises(ValueError, match=r"'json\.a' lies inside 'json'"):
        _compile_spec(("message",), ("json", "json.a"))
    with pytest.raises(ValueError, match=r"'url\.query' is listed twice"):
        _compile_spec(("url.query", "url.query"), ())
    with pytest.raises(ValueError, match=r"'json' is scanned whole but 'json\.x' is listed"):
        _compile_spec(("json.x",), ("json",))


def test_cheap_pre_check_agrees_with_the_regex() -> None:
    """has_candidate takes a byte shortcut on long values: it must say exactly what the regex says."""
    rng = random.Random(20261122)
    alphabet = "0123456789" * 4 + "ab-:/%?&= 张三\n" + "\u0660\uff11"  # Arabic-Indic and full-width digits do not count
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 80)))
        assert has_candidate(text) == (_CANDIDATE.search(text) is not None), text
    assert has_candidate("x" * 40 + "1" * 11) and not has_candidate("x" * 40 + "1" * 10 + "\uff11")
    assert has_candidate("\ud800" + "x" * 40 + "1" * 11)  # a lone surrogate cannot be encoded: the regex decides
