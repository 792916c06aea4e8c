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


def _raws(records: list) -> list[bytes]:
    return [r.raw for r in records]


def test_a_roll_over_during_a_read_skips_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Records appended to a segment after the reader reached its end, then a roll-over, all before the read
    returns: the read stays in that segment (it was the newest when the read began), the next one takes them."""
    spool = Spool(tmp_path, segment_bytes=200)
    spool.append([("syslog|udp:1", b"A" * 40)])
    read_segment = Spool._read_segment
    appended: list[bool] = []

    def meanwhile(*args: object) -> int:
        offset = read_segment(*args)  # type: ignore[arg-type]
        if not appended:  # receivers append while the reader is at the end of segment 1
            appended.append(True)
            spool.append([("syslog|udp:1", b"B" * 40)])  # still fits in segment 1
            spool.append([("syslog|udp:1", b"C" * 150)])  # rolls over to segment 2
        return offset

    monkeypatch.setattr(spool, "_read_segment", meanwhile)
    first, end = spool.read(spool.checkpoint(), 100)
    second, _ = spool.read(end, 100)
    assert [r[:1] for r in _raws(first) + _raws(second)] == [b"A", b"B", b"C"]


def test_a_read_waits_for_the_fsync_of_an_append_in_progress(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A reader never takes a record whose append has not returned (its fsync may yet fail or the power go)."""
    import threading

    spool = Spool(tmp_path)
    _fill(spool, 1)
    in_fsync, release = threading.Event(), threading.Event()
    real_fsync = spool_module.os.fsync

    def slow_fsync(fd: int) -> None:
        in_fsync.set()
        release.wait(10)
        real_fsync(fd)

    monkeypatch.setattr(spool_module.os, "fsync", slow_fsync)
    writer = threading.Thread(target=_fill, args=(spool, 1, 1))
    writer.start()
    assert in_fsync.wait(10)
    got: list[list[bytes]] = []
    reader = threading.Thread(target=lambda: got.append(_raws(spool.read(Position(1, 0), 2)[0])))
    reader.start()
    reader.join(0.3)
    assert reader.is_alive() and not got  # waiting for the append's fsync
    release.set()
    writer.join(10)
    reader.join(10)
    assert got == [[b"message 0", b"message 1"]]


def test_a_failed_append_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Disk full or an I/O error during an append: the caller gets the error, the part of the chunk that reached
    the file is cut off, and the records appended next are read after the last intact one."""
    spool = Spool(tmp_path)
    _fill(spool, 2)
    real_fsync = spool_module.os.fsync
    calls: list[int] = []

    def failing_fsync(fd: int) -> None:
        calls.append(fd)
        if len(calls) == 1:
            raise OSError(28, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(spool_module.os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="No space"):
        _fill(spool, 3, start=2)
    monkeypatch.setattr(spool_module.os, "fsync", real_fsync)
    _fill(spool, 1, start=5)
    assert _raws(spool.read(Position(1, 0), 100)[0]) == [b"message 0", b"message 1", b"message 5"]
    spool.close()
    assert _raws(Spool(tmp_path).read(Position(1, 0), 100)[0]) == [b"message 0", b"message 1", b"message 5"]


def test_appends_go_on_when_a_failed_append_cannot_be_cut_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The disk refuses the cut too: the error is logged and the spool keeps taking records (the failed append's
    records stay: read, never lost)."""
    import builtins

    spool = Spool(tmp_path)
    _fill(spool, 2)
    real_fsync, real_open = spool_module.os.fsync, builtins.open

    def failing_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    def no_cut(path: object, mode: str = "r", *args: object, **kwargs: object) -> object:
        if mode == "r+b":
            raise OSError(5, "Input/output error")
        return real_open(path, mode, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(spool_module.os, "fsync", failing_fsync)
    monkeypatch.setattr(spool_module, "open", no_cut, raising=False)
    with pytest.raises(OSError, match="Input/output"):
        _fill(spool, 3, start=2)
    monkeypatch.setattr(spool_module.os, "fsync", real_fsync)
    monkeypatch.delattr(spool_module, "open")
    _fill(spool, 1, start=5)
    assert _raws(spool.read(Position(1, 0), 100)[0]) == [f"message {i}".encode() for i in range(6)]


def _damage(path: Path, record: int) -> None:
    """Flip a byte in the payload of the record-th record of a segment."""
    data = bytearray(path.read_bytes())
    at = 0
    for _ in range(record):
        at += HEADER.size + HEADER.unpack_from(data, at)[0]
    data[at + HEADER.size + 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("sealed", [True, False])
def test_a_damaged_record_is_passed_over(tmp_path: Path, sealed: bool) -> None:
    """A record damaged on disk in the middle of a segment costs that record only: readers go on with the next
    intact one (in a finished segment and in the newest), and opening the spool does not cut the segment there."""
    spool = Spool(tmp_path, segment_bytes=300 if sealed else 1 << 20)
    _fill(spool, 5)
    if sealed:
        _fill(spool, 5, start=5)  # a second segment: the first is finished
        assert len(spool.segments()) == 2
    spool.close()
    _damage(tmp_path / "spool-00000001.log", 2)
    reopened = Spool(tmp_path)
    expected = [f"message {i}".encode() for i in range(10 if sealed else 5) if i != 2]
    assert _raws(reopened.read(Position(1, 0), 100)[0]) == expected
    got, position = [], Position(1, 0)
    while True:  # the same in small reads
        records, position = reopened.read(position, 2)
        if not records:
            break
        got += _raws(records)
    assert got == expected


def test_a_missing_segment_does_not_stop_the_reader(tmp_path: Path) -> None:
    spool = Spool(tmp_path, segment_bytes=50)  # one record a segment
    for i in range(4):
        _fill(spool, 1, start=i)
    assert spool.segments() == [1, 2, 3, 4]
    (tmp_path / "spool-00000002.log").unlink()
    assert _raws(spool.read(Position(1, 0), 100)[0]) == [b"message 0", b"message 2", b"message 3"]


def test_a_checkpoint_past_the_end_moves_back_on_open(tmp_path: Path) -> None:
    """After a power cut the disk may keep the checkpoint but lose appends it had passed: the checkpoint moves back
    to the spool's end, so records appended next are not skipped."""
    spool = Spool(tmp_path)
    _fill(spool, 3)
    spool.commit(spool.end())
    spool.close()
    segment = tmp_path / "spool-00000001.log"
    segment.write_bytes(segment.read_bytes()[: segment.stat().st_size // 2])  # lost, torn in the middle
    reopened = Spool(tmp_path)
    assert reopened.checkpoint() == reopened.end()
    _fill(reopened, 1, start=9)
    assert _raws(reopened.read(reopened.checkpoint(), 100)[0]) == [b"message 9"]
