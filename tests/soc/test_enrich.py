"""Enrichment: register lookup by host name and IPv4/IPv6, PII tagging and masking."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from core.runtime import Runtime
from inventory.models import Host, System
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
