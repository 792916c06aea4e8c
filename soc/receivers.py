"""Syslog receivers (UDP and TCP, RFC 3164/5424; TCP framing per RFC 6587) feeding the spool.

Records are appended to the spool in groups (one fsync per group, at most ``flush_ms`` apart). Records waiting for
their fsync are bounded: once MAX_UNDURABLE records or ``max_pending_bytes`` bytes are waiting, a TCP connection
waits for them to be durable before reading more, so a slow disk slows senders down instead of losing their
messages. A UDP sender cannot be slowed down: a datagram arriving while the pending records hold
``max_pending_bytes`` is dropped, counted in ``yunshu_soc_dropped{source="udp"}`` and logged (never silently).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from soc.deadletter import DeadLetterStore
from soc.metrics import SocMetrics
from soc.spool import Spool, source_origin, spool_source

log = logging.getLogger("yunshu.soc.receivers")
MAX_FRAME = 256 * 1024
# Records a TCP connection may have read ahead of the spool's fsync before it waits: deep enough that the group
# commit's round trip (fsync, then the event loop taking the GIL back from busy consumer threads) does not cap a
# sender's rate, small enough to bound memory (a few MiB).
MAX_UNDURABLE = 10_000
# Bytes of records waiting for the next group commit (besides the group being written): beyond it UDP datagrams
# are dropped (and counted) and TCP connections wait. Far above what a healthy disk lets pile up in ``flush_ms``.
MAX_PENDING_BYTES = 64 * 1024 * 1024
DROP_LOG_SECONDS = 10.0  # at most one warning about dropped datagrams this often
APPEND_RETRY_SECONDS = 1.0  # after a failed spool append (disk full, I/O error) the group is written again this late
# what read_frames raises on a stream it cannot frame (truncated, oversize, over the reader's limit); the
# connection is then closed after what was read so far is made durable
FRAMING_ERRORS = (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError)


class SpoolWriter:
    """Group commit into the spool from the event loop (the fsync runs in a worker thread)."""

    def __init__(self, spool: Spool, metrics: SocMetrics, flush_ms: int = 20, max_batch: int = 2000,
                 max_pending_bytes: int = MAX_PENDING_BYTES):
        if max_pending_bytes < 1:
            raise ValueError(f"max_pending_bytes must be at least 1, not {max_pending_bytes}")
        self.spool = spool
        self.metrics = metrics
        self.flush_ms = flush_ms
        self.max_batch = max_batch
        self.max_pending_bytes = max_pending_bytes
        self.pending_bytes = 0
        self.dropped = 0
        self._drop_logged_at = float("-inf")
        self._pending: list[tuple[str, bytes]] = []
        self._flushed = asyncio.Event()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # the group being appended (its records, the event set once they are on disk) and the append itself, in a
        # worker thread; kept past a cancel (stop) until stop() has seen the append finish
        self._appending_group: tuple[list[tuple[str, bytes]], asyncio.Event] | None = None
        self._appending: asyncio.Future[Any] | None = None
        self._overdue: list[asyncio.Event] = []  # of groups whose append failed: set once written after all

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    @property
    def undurable(self) -> int:
        """Records submitted but not yet on disk (pending, or being written)."""
        group = self._appending_group
        return len(self._pending) + (len(group[0]) if group is not None else 0)

    @property
    def full(self) -> bool:
        """Whether the pending records hold ``max_pending_bytes`` or more."""
        return self.pending_bytes >= self.max_pending_bytes

    def submit(self, source: str, raw: bytes) -> None:
        """Queue a record for the next group commit (always: the caller waits on ``durable`` when ``full``)."""
        self._pending.append((source, raw))
        self.pending_bytes += len(raw)
        self.metrics.received.labels(source_origin(source)).inc()
        if len(self._pending) >= self.max_batch or self.pending_bytes >= self.max_pending_bytes:
            self._wake.set()

    def offer(self, source: str, raw: bytes) -> bool:
        """Queue a record unless that would take the pending records past ``max_pending_bytes``; a record that
        does not fit is dropped, counted (received and dropped) and logged. For senders that cannot wait (UDP)."""
        if self.pending_bytes + len(raw) <= self.max_pending_bytes:
            self.submit(source, raw)
            return True
        origin = source_origin(source)
        self.metrics.received.labels(origin).inc()
        self.metrics.dropped.labels(origin).inc()
        self.dropped += 1
        self._wake.set()  # write what is pending now, to make room
        now = time.monotonic()
        if now - self._drop_logged_at >= DROP_LOG_SECONDS:
            log.warning("syslog receive buffer full (%d bytes waiting for the spool): %d %s record(s) dropped so far",
                        self.pending_bytes, self.dropped, origin)
            self._drop_logged_at = now
        return False

    async def durable(self) -> None:
        """Wait until everything submitted so far is on disk."""
        if self._pending:
            self._wake.set()
            flushed = self._flushed
            await flushed.wait()
        elif self._appending_group is not None:
            await self._appending_group[1].wait()

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.flush_ms / 1000)
            self._wake.clear()
            try:
                await self.flush()
            except Exception:  # the group is queued again: TCP senders wait, UDP beyond the buffer is dropped
                log.exception("spool append failed; %d record(s) kept in memory and written again in %.0f s",
                              len(self._pending), APPEND_RETRY_SECONDS)
                await asyncio.sleep(APPEND_RETRY_SECONDS)

    async def flush(self) -> None:
        """Append the pending records as one group. Should the append fail, they go back to the front of the queue
        (in order) and whoever waits for them goes on waiting; the error is raised."""
        if not self._pending:
            return
        batch, batch_bytes, self._pending, self.pending_bytes = self._pending, self.pending_bytes, [], 0
        done, self._flushed = self._flushed, asyncio.Event()
        self._appending_group = (batch, done)
        self._appending = asyncio.get_running_loop().run_in_executor(None, self.spool.append, batch)
        try:
            # shielded: cancelled (stop), this task stops waiting but the append goes on in its thread, and stop()
            # finishes the group; it is not queued again, it is being written
            await asyncio.shield(self._appending)
        except Exception:  # (not CancelledError)
            self._appending_group = None
            self._pending[:0] = batch
            self.pending_bytes += batch_bytes
            self._overdue.append(done)
            raise
        self._appending_group = None
        self._written(batch, done)

    def _written(self, batch: list[tuple[str, bytes]], done: asyncio.Event) -> None:
        """A group is on disk: count it and release whoever waits for it (and for groups that failed before)."""
        counts: dict[str, int] = {}
        for source, _ in batch:
            counts[source] = counts.get(source, 0) + 1
        for source, n in counts.items():
            self.metrics.spooled.labels(source_origin(source)).inc(n)
        done.set()
        for event in self._overdue:
            event.set()
        self._overdue.clear()

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        group, self._appending_group = self._appending_group, None
        if group is not None and self._appending is not None:  # the cancel cut its flush off while it was written
            try:
                await self._appending
            except Exception:
                log.exception("spool append failed at shutdown: %d received record(s) not spooled", len(group[0]))
            else:
                self._written(*group)
        try:
            await self.flush()
        except Exception:  # shutting down: say what is lost, and let the rest of the service stop
            log.exception("spool append failed at shutdown: %d received record(s) not spooled", len(self._pending))


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, writer: SpoolWriter):
        self.writer = writer

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        message = data.rstrip(b"\r\n\0")
        if message:
            self.writer.offer(spool_source("syslog", f"udp:{addr[0]}"), message)


async def _line_rest(reader: asyncio.StreamReader) -> tuple[bytes, bool]:
    """The rest of a newline-framed message, and whether the stream ended."""
    try:
        return await reader.readuntil(b"\n"), False
    except asyncio.IncompleteReadError as exc:  # last message without a newline
        return exc.partial, True


Oversize = Callable[[bytes, int], None]  # (the frame's first bytes, its full length)
KEEP_OF_OVERSIZE = 64 * 1024  # bytes of an oversize frame kept for the dead-letter store


async def _drain(reader: asyncio.StreamReader, length: int) -> tuple[bytes, bool]:
    """Read and drop ``length`` bytes; (the first KEEP_OF_OVERSIZE of them, whether the stream ended first)."""
    kept = b""
    while length > 0:
        try:
            chunk = await reader.readexactly(min(length, 64 * 1024))
        except asyncio.IncompleteReadError as exc:
            return (kept + exc.partial)[:KEEP_OF_OVERSIZE], True
        if len(kept) < KEEP_OF_OVERSIZE:
            kept += chunk[:KEEP_OF_OVERSIZE - len(kept)]
        length -= len(chunk)
    return kept, False


async def _drain_line(reader: asyncio.StreamReader, start: bytes) -> tuple[bytes, int, bool]:
    """Drop the rest of an over-long newline-framed line; (first bytes, length, stream ended)."""
    kept, total = start[:KEEP_OF_OVERSIZE], len(start)
    while True:
        try:
            rest = await reader.readuntil(b"\n")
            return (kept + rest)[:KEEP_OF_OVERSIZE], total + len(rest), False
        except asyncio.LimitOverrunError as exc:
            chunk = await reader.readexactly(max(exc.consumed, 1))
        except asyncio.IncompleteReadError as exc:
            return (kept + exc.partial)[:KEEP_OF_OVERSIZE], total + len(exc.partial), True
        if len(kept) < KEEP_OF_OVERSIZE:
            kept += chunk[:KEEP_OF_OVERSIZE - len(kept)]
        total += len(chunk)


async def read_frames(reader: asyncio.StreamReader, oversize: Oversize | None = None,  # type: ignore[no-untyped-def]
                      cut_short: Oversize | None = None):
    """Yield syslog messages from a TCP stream: octet counting (``LEN SP MSG``) or newline framing.

    A frame longer than MAX_FRAME (or a line longer than the reader's limit) raises, unless ``oversize`` is
    given: then it is read past, reported to ``oversize`` (first bytes, length) and the stream goes on. An
    octet-counted frame the sender's close cuts short raises IncompleteReadError, unless ``cut_short`` is given:
    then it gets (the bytes that came, up to KEEP_OF_OVERSIZE, and the length announced) and the stream ends.
    """
    while True:
        head = await reader.read(1)
        if not head:
            return
        ended = False
        if head in b"123456789":  # maybe octet counting: NONZERO-DIGIT *DIGIT SP
            nxt = await reader.read(1)
            while nxt.isdigit() and len(head) < 7:
                head += nxt
                nxt = await reader.read(1)
            if nxt == b" ":
                length = int(head)
                if length > MAX_FRAME:
                    if oversize is None:
                        raise ValueError(f"frame of {length} bytes exceeds {MAX_FRAME}")
                    kept, ended = await _drain(reader, length)
                    if not ended:
                        oversize(kept, length)
                        continue
                else:
                    try:
                        frame = await reader.readexactly(length)
                    except asyncio.IncompleteReadError as exc:
                        kept = exc.partial[:KEEP_OF_OVERSIZE]
                    else:
                        yield frame
                        continue
                if cut_short is None:
                    raise asyncio.IncompleteReadError(kept, length)
                cut_short(kept, length)
                return
            head += nxt
            if not nxt:
                ended = True
        line = head
        if not ended and not head.endswith(b"\n"):
            try:
                rest, ended = await _line_rest(reader)
            except asyncio.LimitOverrunError:
                if oversize is None:
                    raise
                kept, length, ended = await _drain_line(reader, head)
                oversize(kept, length)
                if ended:
                    return
                continue
            line += rest
        line = line.rstrip(b"\r\n")
        if line:
            yield line
        if ended:
            return


class SyslogReceivers:
    """UDP and TCP listeners on one port of one or more addresses (for example loopback and a lab's bridge)."""

    def __init__(self, spool: Spool, metrics: SocMetrics, host: str | Sequence[str], port: int,
                 deadletters: DeadLetterStore | None = None, max_pending_bytes: int = MAX_PENDING_BYTES):
        self.writer = SpoolWriter(spool, metrics, max_pending_bytes=max_pending_bytes)
        self.metrics = metrics
        self.deadletters = deadletters
        self.hosts = [host] if isinstance(host, str) else list(dict.fromkeys(host))
        self.port = port
        self._udp: list[asyncio.DatagramTransport] = []
        self._tcp: asyncio.Server | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.writer.start()
        for host in self.hosts:
            transport, _ = await loop.create_datagram_endpoint(lambda: _UdpProtocol(self.writer),
                                                               local_addr=(host, self.port))
            self._udp.append(transport)
        self._tcp = await asyncio.start_server(self._handle, self.hosts, self.port, limit=MAX_FRAME + 64)
        log.info("syslog listening on %s port %d (udp and tcp)", ", ".join(self.hosts), self.port)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")[0]
        source = spool_source("syslog", f"tcp:{peer}")

        def dead_letter(tag: str, reason: str, kept: bytes) -> None:
            """A frame that cannot be taken: counted, logged, and its first bytes go to the dead letters with the
            reason; the stream goes on (or has ended)."""
            log.warning("syslog tcp frame from %s dead-lettered: %s", peer, reason)
            self.metrics.received.labels(source_origin(source)).inc()
            self.metrics.dead_lettered.labels(source_origin(source)).inc()
            assert self.deadletters is not None
            self.deadletters.add_many([(f"{source}:{tag}", reason, kept)])

        def oversize(kept: bytes, length: int) -> None:
            dead_letter("oversize", f"frame of {length} bytes exceeds the limit of {MAX_FRAME}; first {len(kept)} "
                        "bytes kept", kept)

        def cut_short(came: bytes, length: int) -> None:
            dead_letter("cut-short", f"octet-counted frame of {length} bytes ended by the connection's close; "
                        f"{len(came)} bytes kept", came)

        keeping = self.deadletters is not None
        try:
            count = 0
            async for message in read_frames(reader, oversize if keeping else None, cut_short if keeping else None):
                self.writer.submit(source, message)
                count += 1
                if (count % 500 == 0 and self.writer.undurable >= MAX_UNDURABLE) or self.writer.full:
                    await self.writer.durable()  # back-pressure: a bounded number of records in memory
            await self.writer.durable()
        except (*FRAMING_ERRORS, ConnectionError) as exc:
            log.warning("syslog tcp connection from %s closed: %s", peer, exc)
            await self.writer.durable()
        finally:
            writer.close()

    async def stop(self) -> None:
        for transport in self._udp:
            transport.close()
        if self._tcp:
            self._tcp.close()
            await self._tcp.wait_closed()
        await self.writer.stop()
