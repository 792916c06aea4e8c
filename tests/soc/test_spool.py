"""The disk spool: durable appends, ordered reads, checkpoints, segment roll-over, torn-tail repair."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from soc import spool as spool_module
from soc.spool import HEADER, Position, Spool, source_origin, spool_source


def _fill(spool: Spool, n: int, start: int = 0) -> None:
    spool.append([("syslog|udp:127.0.0.1", f"message {i}".encode()) for i in range(start, start + n)])


def test_append_read_commit(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    _fill(spool, 10)
    records, end = spool.read(spool.checkpoint(), 4)
    assert [r.raw for r in records] == [f"message {i}".encode() for i in range(4)]
    assert records[0].source == "syslog|udp:127.0.0.1"
    assert len({r.source_key for r in records}) == 4
    spool.commit(end)
    rest, end2 = spool.read(spool.checkpoint(), 100)
    assert [r.raw for r in rest] == [f"message {i}".encode() for i in range(4, 10)]
    assert end2 == spool.end()
    spool.commit(end2)
    assert spool.backlog_bytes() == 0


def test_keys_are_stable_across_reopen(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    _fill(spool, 5)
    first = [r.source_key for r in spool.read(spool.checkpoint())[0]]
    spool.close()
    again = Spool(tmp_path)
    assert [r.source_key for r in again.read(again.checkpoint())[0]] == first


def test_roll_over_and_cleanup(tmp_path: Path) -> None:
    spool = Spool(tmp_path, segment_bytes=300)
    for i in range(20):
        _fill(spool, 3, start=i * 3)
    assert len(spool.segments()) > 3
    seen: list[bytes] = []
    while True:
        records, end = spool.read(spool.checkpoint(), 7)
        if not records:
            break
        seen += [r.raw for r in records]
        spool.commit(end)
    assert seen == [f"message {i}".encode() for i in range(60)]
    assert len(spool.segments()) == 1  # consumed segments were removed


def test_torn_tail_is_cut_on_open(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    _fill(spool, 3)
    spool.close()
    segment = tmp_path / "spool-00000001.log"
    whole = segment.stat().st_size
    with segment.open("ab") as fh:
        fh.write(b"\x00\x00\x00\x40garbage")  # a crash in the middle of the next append
    reopened = Spool(tmp_path)
    assert segment.stat().st_size == whole
    assert [r.raw for r in reopened.read(Position(1, 0))[0]] == [b"message 0", b"message 1", b"message 2"]
    _fill(reopened, 1, start=3)
    assert len(reopened.read(Position(1, 0))[0]) == 4


@pytest.mark.parametrize("repair_records", [1, 2, 65536])
@pytest.mark.parametrize("tail", ["header", "payload", "crc"])
def test_tail_repair_keeps_every_intact_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, repair_records: int,
                                               tail: str) -> None:
    """The repair reads the segment in rounds of REPAIR_RECORDS and stops at the first record that is cut short or
    fails its CRC: the records before it stay, it and anything after it go."""
    monkeypatch.setattr(spool_module, "REPAIR_RECORDS", repair_records)
    spool = Spool(tmp_path)
    _fill(spool, 5)
    spool.close()
    segment = tmp_path / "spool-00000001.log"
    whole = segment.stat().st_size
    payload = b"syslog|udp:127.0.0.1\0message 5"
    torn = {"header": HEADER.pack(len(payload), 0)[:5],
            "payload": HEADER.pack(len(payload), 0) + payload[:9],
            "crc": HEADER.pack(len(payload), 12345) + payload}[tail]
    with segment.open("ab") as fh:
        fh.write(torn)
    reopened = Spool(tmp_path)
    assert segment.stat().st_size == whole
    assert [r.raw for r in reopened.read(Position(1, 0))[0]] == [f"message {i}".encode() for i in range(5)]


def test_uncommitted_records_are_read_again(tmp_path: Path) -> None:
    """A consumer that dies before commit sees the same records (and keys) after restart."""
    spool = Spool(tmp_path)
    _fill(spool, 6)
    records, _ = spool.read(spool.checkpoint(), 6)
    spool.close()
    again = Spool(tmp_path)
    assert again.read(again.checkpoint(), 6)[0] == records


def test_source_origin_is_a_bounded_metrics_label() -> None:
    assert source_origin(spool_source("syslog", "udp:127.0.0.1")) == "udp"
    assert source_origin(spool_source("syslog", "tcp:[::1]")) == "tcp"
    assert source_origin(spool_source("json", "http:analyst-zhang")) == "http"  # the user name is not a label
    assert source_origin(spool_source("json", "carrier-pigeon:42")) == "other"
    assert source_origin("no-separator-at-all") == "other"


@pytest.mark.parametrize("block", [7, 64, 1024 * 1024])
def test_block_reads_match_record_by_record(tmp_path: Path, block: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Records cut from blocks of any size (a header or a payload split between two blocks, a record longer than a
    block) are the records the file holds, in order, up to ``max_records`` and ``until``, and reading stops at a
    record still being written."""
    monkeypatch.setattr(spool_module, "READ_BLOCK", block)
    spool = Spool(tmp_path / "spool", segment_bytes=4000)
    rng = random.Random(block)
    written = [(spool_source("syslog", f"tcp:10.0.0.{rng.randrange(3)}"), bytes(rng.randrange(256) for _ in
                range(rng.choice([0, 1, 30, 200, 2000])))) for _ in range(60)]
    for at in range(0, len(written), 7):
        spool.append(written[at:at + 7])
    got, end = [], spool.checkpoint()
    while True:
        records, end = spool.read(end, max_records=rng.randrange(1, 9))
        if not records:
            break
        got += records
    assert [(r.source, r.raw) for r in got] == written
    assert len({r.source_key for r in got}) == len(written) and all(r.source_key.startswith("spool:") for r in got)
    middle = got[25].source_key.split(":")
    until = Position(int(middle[1]), int(middle[2]))
    before, stop = spool.read(spool.checkpoint(), 1000, until)
    assert [r.raw for r in before] == [r.raw for r in got if _position(r.source_key) < until] and stop <= until
    # a record being written: its header is there, its payload not all of it yet
    last = spool.end()
    with open(tmp_path / "spool" / f"spool-{last.segment:08d}.log", "ab") as fh:
        fh.write(HEADER.pack(50, 0) + b"partial")
    records, after = spool.read(last, 10)
    assert records == [] and after == last


def _position(key: str) -> Position:
    _, segment, offset = key.split(":")
    return Position(int(segment), int(offset))
