"""Deterministic event ids: ordered within a stream where the source key ends in an offset, 128-bit hashes elsewhere."""

from __future__ import annotations

import hashlib
import re

from hypothesis import given
from hypothesis import strategies as st

from soc.ecs import event_id

HEX32 = re.compile(r"[0-9a-f]{32}")


def test_same_record_same_place_same_id() -> None:
    assert event_id("file:/var/log/auth.log:4096", b"line") == event_id("file:/var/log/auth.log:4096", "line")


def test_ids_of_one_stream_grow_with_the_offset() -> None:
    offsets = [0, 1, 190, 4096, 10**9, 2**48 - 1]
    ids = [event_id(f"spool:00000007:{offset}", f"record {offset}") for offset in offsets]
    assert ids == sorted(ids)
    assert all(HEX32.fullmatch(i) for i in ids)
    # the stream's prefix is shared, the offset follows it in hex
    assert len({i[:8] for i in ids}) == 1
    assert [int(i[8:20], 16) for i in ids] == offsets


def test_different_record_at_the_same_place_gets_another_id() -> None:
    # a file rotated and rewritten: same path, same offset, other content
    assert event_id("file:/a.log:0", "first") != event_id("file:/a.log:0", "second")


def test_same_record_at_another_place_gets_another_id() -> None:
    assert event_id("file:/a.log:0", "x") != event_id("file:/b.log:0", "x")
    assert event_id("file:/a.log:0", "x") != event_id("file:/a.log:1", "x")


def test_keys_without_an_offset_keep_the_plain_hash() -> None:
    for key in ("test", "file:/a.log:", "file:/a.log:12a", "x:" + "9" * 16, f"x:{2**48}"):
        h = hashlib.blake2b(digest_size=16)
        h.update(key.encode())
        h.update(b"\0")
        h.update(b"raw")
        assert event_id(key, "raw") == h.hexdigest()


@given(st.text(max_size=40), st.integers(min_value=0, max_value=2**48 - 1), st.binary(max_size=64))
def test_every_id_is_32_hex_digits_and_stable(stream: str, offset: int, raw: bytes) -> None:
    key = f"{stream}:{offset}"
    first = event_id(key, raw)
    assert HEX32.fullmatch(first)
    assert event_id(key, raw) == first


def test_an_ordered_id_is_the_streams_hash_the_offset_and_the_records_hash() -> None:
    key, raw = "file:/var/log/auth.log:123456789", b"Dec  3 08:00:00 host sshd[1]: Failed password for root"
    record = hashlib.blake2b(digest_size=6)
    record.update(key.encode())
    record.update(b"\0")
    record.update(raw)
    stream = hashlib.blake2b(b"file:/var/log/auth.log", digest_size=4).hexdigest()
    assert event_id(key, raw) == f"{stream}{123456789:012x}{record.hexdigest()}"
    assert event_id(key, raw.decode()) == event_id(key, raw)
