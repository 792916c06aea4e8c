"""Syslog receiver edge cases: oversize frames are dead-lettered and the connection carries on."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from soc.deadletter import DeadLetterStore
from soc.metrics import SocMetrics
from soc.receivers import MAX_FRAME, SyslogReceivers, read_frames
from soc.spool import Spool
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
