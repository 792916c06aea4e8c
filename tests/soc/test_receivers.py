"""Syslog receiver edge cases: oversize frames are dead-lettered and the connection carries on; the receive buffer
is bounded (UDP drops are counted, TCP waits)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from soc.deadletter import DeadLetterStore
from soc.metrics import SocMetrics
from soc.receivers import MAX_FRAME, SpoolWriter, SyslogReceivers, read_frames
from soc.spool import Position, Spool, spool_source
from tests.live_server import free_port


def test_read_frames_reports_oversize_and_continues() -> None:
    big = b"x" * (MAX_FRAME + 10)
    stream = (str(len(big)).encode() + b" " + big + b"12 <38>after-1\n"
              + b"<38>" + b"y" * (3 * MAX_FRAME) + b"\n<38>after-2\n")
    reported: list[tuple[int, int]] = []

    async def run() -> list[bytes]:
        reader = asyncio.StreamReader(limit=MAX_FRAME + 64)
        reader.feed_data(stream)
        reader.feed_eof()
        return [frame async for frame in read_frames(reader, lambda kept, n: reported.append((len(kept), n)))]

    frames = asyncio.run(run())
    assert frames == [b"<38>after-1\n", b"<38>after-2"]  # an octet-counted frame is taken as sent
    assert reported == [(64 * 1024, MAX_FRAME + 10), (64 * 1024, 3 * MAX_FRAME + 5)]


async def _send_tcp(address: str, port: int, data: bytes) -> None:
    _, writer = await asyncio.open_connection(address, port)
    writer.write(data)
    await writer.drain()
    writer.close()
    await writer.wait_closed()


async def _until(done: Callable[[], bool]) -> None:
    for _ in range(100):
        if done():
            return
        await asyncio.sleep(0.05)


def test_live_receiver_dead_letters_oversize_frames(tmp_path: Path) -> None:
    port = free_port()
    spool = Spool(tmp_path / "spool")
    dead = DeadLetterStore(tmp_path / "dead.db")

    async def run() -> None:
        receivers = SyslogReceivers(spool, SocMetrics(), "127.0.0.1", port, dead)
        await receivers.start()
        try:
            big = b"<38>" + b"z" * (MAX_FRAME + 1)
            await _send_tcp("127.0.0.1", port, str(len(big)).encode() + b" " + big + b"9 <38>small")
            await _until(lambda: dead.count() == 1 and spool.backlog_bytes() > 0)
        finally:
            await receivers.stop()

    asyncio.run(run())
    records, _ = spool.read(spool.checkpoint(), 10)
    assert [r.raw for r in records] == [b"<38>small"]
    letter = dead.latest(1)[0]
    assert "exceeds the limit" in letter.reason and letter.raw.startswith(b"<38>zzz")
    spool.close()
    dead.close()


def test_receiver_listens_on_every_address_given(tmp_path: Path) -> None:
    port = free_port()
    spool = Spool(tmp_path / "spool")

    async def run() -> None:
        receivers = SyslogReceivers(spool, SocMetrics(), ["127.0.0.1", "127.0.0.2", "127.0.0.1"], port)
        await receivers.start()
        try:
            for n, address in enumerate(["127.0.0.1", "127.0.0.2"]):
                await _send_tcp(address, port, f"<38>tcp-{n}\n".encode())
                loop = asyncio.get_running_loop()
                udp, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol, remote_addr=(address, port))
                udp.sendto(f"<38>udp-{n}".encode())
                udp.close()
            await _until(lambda: len(spool.read(spool.checkpoint(), 10)[0]) == 4)
        finally:
            await receivers.stop()

    asyncio.run(run())
    records, _ = spool.read(spool.checkpoint(), 10)
    assert sorted(r.raw for r in records) == [b"<38>tcp-0", b"<38>tcp-1", b"<38>udp-0", b"<38>udp-1"]
    spool.close()


def _value(metrics: SocMetrics, counter: str, source: str) -> int:
    return metrics.ingest_totals().get(source, {}).get(counter, 0)


def test_spool_writer_bound_drops_and_counts_what_does_not_fit(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    metrics = SocMetrics()
    source = spool_source("syslog", "udp:127.0.0.1")
    with pytest.raises(ValueError, match="max_pending_bytes"):
        SpoolWriter(spool, metrics, max_pending_bytes=0)

    async def run() -> list[bool]:
        writer = SpoolWriter(spool, metrics, max_pending_bytes=100)  # not started: nothing flushes on its own
        taken = [writer.offer(source, f"<38>message {i:02d} {'x' * 15}".encode()) for i in range(10)]  # 30 bytes
        assert writer.pending_bytes == 90 and writer.full is False and writer.dropped == 7
        await writer.flush()
        assert writer.pending_bytes == 0
        taken.append(writer.offer(source, b"<38>after the flush"))  # room again
        await writer.flush()
        return taken

    taken = asyncio.run(run())
    assert taken == [True] * 3 + [False] * 7 + [True]
    records, _ = spool.read(Position(1, 0), 100)
    assert [r.raw[:15] for r in records] == [b"<38>message 00 ", b"<38>message 01 ", b"<38>message 02 ",
                                             b"<38>after the f"]
    assert metrics.ingest_totals() == {"udp": {"received": 11, "spooled": 4, "parsed": 0, "stored": 0,
                                               "dead_lettered": 0, "dropped": 7}}
    spool.close()


class SlowSpool(Spool):
    """The real spool, with a slow disk: every append takes ``delay`` seconds longer."""

    delay = 0.1

    def append(self, records):  # type: ignore[no-untyped-def]
        time.sleep(self.delay)
        return super().append(records)


def test_live_udp_drops_are_counted_and_tcp_waits_when_the_buffer_is_full(tmp_path: Path) -> None:
    """A tiny receive buffer in front of a slow spool: UDP loses datagrams, but every one is counted as received
    and either spooled or dropped; TCP senders are held back and lose nothing."""
    port = free_port()
    spool = SlowSpool(tmp_path / "spool")
    metrics = SocMetrics()

    async def run() -> None:
        receivers = SyslogReceivers(spool, metrics, "127.0.0.1", port, max_pending_bytes=200)
        await receivers.start()
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                for i in range(40):
                    udp.sendto(f"<38>udp datagram {i:02d} {'u' * 30}".encode(), ("127.0.0.1", port))
            await _send_tcp("127.0.0.1", port, b"".join(f"<38>tcp line {i:02d} {'t' * 30}\n".encode()
                                                        for i in range(40)))
            await _until(lambda: _value(metrics, "received", "udp") == 40 and _value(metrics, "spooled", "tcp") == 40)
        finally:
            await receivers.stop()

    asyncio.run(run())
    records, _ = spool.read(Position(1, 0), 1000)
    udp = [r.raw for r in records if r.source.startswith("syslog|udp:")]
    tcp = [r.raw for r in records if r.source.startswith("syslog|tcp:")]
    totals = metrics.ingest_totals()
    assert totals["udp"]["dropped"] > 0, "the tiny buffer must overflow while the spool is slow"
    assert totals["udp"]["received"] == 40 == len(udp) + totals["udp"]["dropped"]
    assert totals["udp"]["spooled"] == len(udp)
    assert udp == sorted(udp)  # what was kept is in arrival order
    assert tcp == [f"<38>tcp line {i:02d} {'t' * 30}".encode() for i in range(40)]
    assert totals["tcp"]["received"] == totals["tcp"]["spooled"] == 40 and totals["tcp"]["dropped"] == 0
    spool.close()


def _writer_with_one_record(spool: Spool, metrics: SocMetrics, raw: bytes) -> tuple[SpoolWriter, asyncio.Future]:
    """A running writer (a group commit every 5 ms) with one TCP record submitted, and a task waiting for it."""
    writer = SpoolWriter(spool, metrics, flush_ms=5)
    writer.start()
    writer.submit("syslog|tcp:192.0.2.1", raw)
    return writer, asyncio.ensure_future(writer.durable())


def test_spool_writer_keeps_records_through_a_failed_append(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The disk refuses an append (full for a moment): the group stays queued, in order, whoever waits for it goes
    on waiting, and the next attempt writes it; the writer never stops."""
    import soc.receivers as receivers

    monkeypatch.setattr(receivers, "APPEND_RETRY_SECONDS", 0.05)
    spool = Spool(tmp_path / "spool")
    append, failures = spool.append, [OSError(28, "No space left on device")]

    def full_once(records: list[tuple[str, bytes]]) -> object:
        if failures:
            raise failures.pop()
        return append(records)

    monkeypatch.setattr(spool, "append", full_once)
    metrics = SocMetrics()

    async def run() -> None:
        writer, waiting = _writer_with_one_record(spool, metrics, b"first")
        await asyncio.sleep(0.02)  # the first append fails meanwhile
        writer.submit("syslog|tcp:192.0.2.1", b"second")
        await asyncio.wait_for(asyncio.gather(waiting, writer.durable()), 5)
        assert not failures and not writer._task.done()  # type: ignore[union-attr]
        await writer.stop()

    asyncio.run(run())
    assert [r.raw for r in spool.read(spool.checkpoint())[0]] == [b"first", b"second"]
    assert metrics.spooled.labels("tcp")._value.get() == 2


@pytest.mark.parametrize(("announced", "sent"), [(40, 0), (MAX_FRAME + 10, 0), (MAX_FRAME + 10, 100_000)])
def test_a_frame_cut_short_by_the_close_is_dead_lettered(tmp_path: Path, announced: int, sent: int) -> None:
    """The sender closes inside an octet-counted frame (of an ordinary size or an oversize one, after a few bytes or
    after more than one read's worth): the frames before it are spooled, its first bytes go to the dead letters
    with the reason, and both are counted."""
    port = free_port()
    spool = Spool(tmp_path / "spool")
    dead = DeadLetterStore(tmp_path / "dead.db")
    metrics = SocMetrics()

    async def run() -> None:
        receivers = SyslogReceivers(spool, metrics, "127.0.0.1", port, dead)
        await receivers.start()
        try:
            await _send_tcp("127.0.0.1", port,
                            b"9 <38>first" + str(announced).encode() + b" <38>cut sho" + b"r" * sent)
            await _until(lambda: dead.count() == 1 and spool.backlog_bytes() > 0)
        finally:
            await receivers.stop()

    asyncio.run(run())
    assert [r.raw for r in spool.read(spool.checkpoint(), 10)[0]] == [b"<38>first"]
    letter = dead.latest(1)[0]
    assert letter.raw == (b"<38>cut sho" + b"r" * sent)[:64 * 1024]  # its first bytes
    assert f"frame of {announced} bytes ended by the connection's close" in letter.reason
    totals = metrics.ingest_totals()["tcp"]
    assert (totals["received"], totals["dead_lettered"]) == (2, 1)
    spool.close()
    dead.close()


def test_stopping_during_an_append_writes_its_group_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """stop() cancels the writer while a group is being appended in its worker thread: that append finishes, and
    the group is neither queued again (written twice) nor lost."""
    spool = Spool(tmp_path / "spool")
    append = spool.append
    started = threading.Event()

    def slow(records: list[tuple[str, bytes]]) -> object:
        started.set()
        time.sleep(0.3)
        return append(records)

    monkeypatch.setattr(spool, "append", slow)
    metrics = SocMetrics()

    async def run() -> None:
        writer, waiting = _writer_with_one_record(spool, metrics, b"only once")
        while not started.is_set():
            await asyncio.sleep(0.01)
        await writer.stop()
        await asyncio.wait_for(waiting, 5)  # released once the group is on disk

    asyncio.run(run())
    assert [r.raw for r in spool.read(spool.checkpoint())[0]] == [b"only once"]
    assert metrics.spooled.labels("tcp")._value.get() == 1
