"""The disk spool: an append-only, fsync'd log of received records, read back in order.

Receivers append every record here before anything else happens to it (group commit: one fsync per
batch), and a consumer reads batches in order, hands them to the pipeline and only then moves the
checkpoint. While the store is slow or down the spool simply grows; when it returns the consumer
catches up in order. A record's id comes from its place in the spool, so a batch replayed after a
crash is stored once.

Record framing: 4-byte big-endian length, 4-byte CRC-32, then ``source\\0raw``. A torn record at the
tail (crash mid-write) is cut off when the spool is opened.
"""

from __future__ import annotations

import contextlib
import logging
import os
import struct
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from soc.metrics import source_label

log = logging.getLogger("yunshu.soc.spool")

HEADER = struct.Struct(">II")
SEGMENT_BYTES = 64 * 1024 * 1024
READ_BLOCK = 1024 * 1024  # bytes a reader takes from a segment at once
REPAIR_RECORDS = 65536  # records the tail repair holds at once while it looks for the last intact one
CHECKPOINT = "checkpoint"
CURSOR_PREFIX = "cursor-"


@dataclass(frozen=True, order=True)
class Position:
    segment: int
    offset: int


class SpooledRecord(NamedTuple):  # a tuple: made for every record read, and cheaper to make than a dataclass
    source: str  # where it came from, e.g. "syslog-udp:127.0.0.1"
    raw: bytes
    source_key: str  # durable place: "spool:SEGMENT:OFFSET" (named as RawRecord's: Pipeline.prepare takes it as it is)


_new_tuple = tuple.__new__


def spool_source(fmt: str, origin: str) -> str:
    """The source label of a spooled record: ``FORMAT|ORIGIN`` (``syslog|udp:127.0.0.1``)."""
    return f"{fmt}|{origin}"


def source_format(source: str) -> str:
    """The parser format of a spooled record's source."""
    return source.split("|", 1)[0]


def source_origin(source: str) -> str:
    """The kind of origin of a spooled record's source, for metrics: ``udp``, ``tcp``, ``http`` (``other`` for
    anything else, so that the metrics' label set stays bounded)."""
    return source_label(source.split("|", 1)[-1].split(":", 1)[0])


def source_sender(source: str) -> str | None:
    """The address a syslog record came from (``syslog|udp:198.18.0.5`` → ``198.18.0.5``); None for other origins."""
    origin = source.split("|", 1)[-1]
    transport, _, address = origin.partition(":")
    return address or None if transport in ("udp", "tcp") else None


def _segment_name(number: int) -> str:
    return f"spool-{number:08d}.log"


class SpoolReader:
    """Reading a spool and keeping its cursors, without appending: what a process other than the appender's uses
    (the detection process). It cannot see which appends are durable: every read names its ``until``, a position
    the appender reported (see ``Spool.on_append``)."""

    def __init__(self, directory: Path | str, segment_bytes: int = SEGMENT_BYTES):
        self.dir = Path(directory)
        self.segment_bytes = segment_bytes

    def segments(self) -> list[int]:
        return sorted(int(p.name[6:14]) for p in self.dir.glob("spool-*.log"))

    def checkpoint(self) -> Position:
        """Where the consumer stopped (everything before it is stored)."""
        path = self.dir / CHECKPOINT
        if path.exists():
            segment, offset = path.read_text().split()
            return Position(int(segment), int(offset))
        segments = self.segments()
        return Position(segments[0] if segments else 1, 0)

    def _dir_fd_sync(self) -> None:
        fd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _write_durably(self, name: str, text: str) -> None:
        tmp = self.dir / f"{name}.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.dir / name)
        self._dir_fd_sync()  # the rename itself: else a power cut could keep commit's unlinks but not the new file

    def cursor(self, name: str) -> tuple[Position, str] | None:
        """A named reader's position (e.g. detection's) and the note saved with it; None if never set."""
        path = self.dir / f"{CURSOR_PREFIX}{name}"
        if not path.exists():
            return None
        first, _, note = path.read_text(encoding="utf-8").partition("\n")
        segment, offset = first.split()
        return Position(int(segment), int(offset)), note.strip()

    def set_cursor(self, name: str, position: Position, note: str = "") -> None:
        """Save a named reader's position durably, with a one-line note (e.g. the work in flight).

        A named cursor does not protect segments: the store's checkpoint must not pass it (see ``commit``).
        """
        if "\n" in note:
            raise ValueError("a cursor note is one line")
        self._write_durably(f"{CURSOR_PREFIX}{name}", f"{position.segment} {position.offset}\n{note}\n")

    def read(self, start: Position, max_records: int = 5000,
             until: Position | None = None) -> tuple[list[SpooledRecord], Position]:
        """Up to ``max_records`` complete records from ``start`` and before ``until`` (required here: a durable
        end the appender reported), and the position after."""
        if until is None:
            raise ValueError("a spool reader outside the appending process reads up to a durable end it was given")
        records: list[SpooledRecord] = []
        position = start
        while len(records) < max_records and position < until:
            path = self.dir / _segment_name(position.segment)
            if not path.exists():
                position = self._skip_missing(position, until)
                continue
            limit = until.offset if until.segment == position.segment else None
            after = self._read_segment(path, position, max_records - len(records), limit, records)
            if len(records) < max_records and (limit is None or after < limit):
                end = path.stat().st_size if limit is None else limit
                if after < end:  # not a record: damaged on disk
                    resume = self._skip_damage(path, Position(position.segment, after), end)
                    if resume is not None:
                        position = Position(position.segment, resume)
                        continue
                    log.error("spool segment %d: the %d bytes from offset %d on are unreadable (records in them "
                              "are lost)", position.segment, end - after, after)
                    after = end
            position = Position(position.segment, after)
            if len(records) >= max_records or limit is not None:
                break  # (``until`` lies in this segment: what follows it is not this reader's yet)
            position = Position(position.segment + 1, 0)  # this segment is finished: go on to the next
        return records, position

    @staticmethod
    def _read_segment(path: Path, start: Position, max_records: int, limit: int | None,
                      records: list[SpooledRecord]) -> int:
        """Append to ``records`` up to ``max_records`` complete records of one segment starting at ``start`` (and
        before offset ``limit``); returns the offset after the last one. The file is read in blocks and the records
        cut from them (one read call per block, not two per record)."""
        segment, offset = start.segment, start.offset
        sources: dict[bytes, str] = {}  # a few distinct sources: each decoded once
        taken = 0
        with open(path, "rb") as fh:
            fh.seek(offset)
            block, at = b"", 0  # bytes of the file from offset - at on; ``at``: where the next record starts
            while taken < max_records and (limit is None or offset < limit):
                if len(block) - at < HEADER.size:
                    block, at = block[at:] + fh.read(max(READ_BLOCK, HEADER.size)), 0
                    if len(block) < HEADER.size:
                        break
                length, crc = HEADER.unpack_from(block, at)
                end = at + HEADER.size + length
                if end > len(block):
                    block, at = block[at:] + fh.read(max(READ_BLOCK, end - len(block))), 0
                    end = HEADER.size + length
                    if end > len(block):
                        break  # the end, a record being written right now, or a torn one: stop here
                payload = block[at + HEADER.size:end]
                if zlib.crc32(payload) != crc:
                    break
                source, _, raw = payload.partition(b"\0")
                name = sources.get(source)
                if name is None:
                    name = sources[source] = source.decode()
                # tuple.__new__: the named tuple's own __new__ is interpreted code, twice the cost per record
                records.append(_new_tuple(SpooledRecord, (name, raw, f"spool:{segment}:{offset}")))
                taken += 1
                offset += HEADER.size + length
                at = end
        return offset

    def _skip_missing(self, position: Position, until: Position) -> Position:
        """A reader's segment is gone (removed by hand, or lost with the file system's metadata): go on at the next
        segment there is, rather than stop there for ever."""
        later = [n for n in self.segments() if position.segment < n <= until.segment]
        if not later:
            return until
        log.error("spool segment %d is missing: reading on at segment %d", position.segment, later[0])
        return Position(later[0], 0)

    @staticmethod
    def _skip_damage(path: Path, at: Position, stop: int) -> int | None:
        """Where the next intact record starts after bytes at ``at`` that are not one (a record damaged on disk),
        before offset ``stop``; None when nothing intact follows. A candidate must have a payload of
        ``source\\0raw`` with a ``format|origin`` source and a matching CRC-32."""
        if at.offset >= stop:
            return None
        with open(path, "rb") as fh:
            fh.seek(at.offset)
            data = fh.read(stop - at.offset)
        for i in range(1, len(data) - HEADER.size + 1):
            length, crc = HEADER.unpack_from(data, i)
            end = i + HEADER.size + length
            if length < 3 or end > len(data):
                continue
            payload = data[i + HEADER.size:end]
            if b"|" in payload.partition(b"\0")[0] and b"\0" in payload and zlib.crc32(payload) == crc:
                log.error("spool segment %d: %d damaged bytes at offset %d passed over (records in them are lost)",
                          at.segment, i, at.offset)
                return at.offset + i
        return None


class Spool(SpoolReader):
    """Append from many threads, consume from one (or read from another process: ``SpoolReader``)."""

    def __init__(self, directory: Path | str, segment_bytes: int = SEGMENT_BYTES):
        super().__init__(directory, segment_bytes)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._appended = threading.Condition(self._lock)
        self._on_append: list[Callable[[Position], None]] = []
        segments = self.segments()
        self._segment = segments[-1] if segments else 1
        self._repair_tail(self._segment)
        self._fh = open(self.dir / _segment_name(self._segment), "ab")  # noqa: SIM115 - kept open for appends
        self._dir_fd_sync()
        end, checkpoint = self.end(), self.checkpoint()
        if checkpoint > end:  # the disk lost appends the checkpoint had passed (a power cut): left there, it would
            # have the consumer skip the records appended next, at offsets it counts as done
            log.error("spool checkpoint %s lies past the spool's end %s: moved back to it", checkpoint, end)
            self.commit(end)

    # --- appending ----------------------------------------------------------------------------------------
    def append(self, records: list[tuple[str, bytes]]) -> Position:
        """Append records durably (written and fsync'd before returning); returns the end position."""
        if not records:
            return self.end()
        chunk = bytearray()
        for source, raw in records:
            payload = source.encode() + b"\0" + raw
            chunk += HEADER.pack(len(payload), zlib.crc32(payload)) + payload
        with self._lock:
            if self._fh.tell() and self._fh.tell() + len(chunk) > self.segment_bytes:
                self._roll()
            start = self._fh.tell()
            try:
                self._fh.write(chunk)
                self._fh.flush()
                os.fsync(self._fh.fileno())
            except BaseException:
                self._cut_back(start)
                raise
            self._appended.notify_all()
            end = Position(self._segment, self._fh.tell())
            for listener in self._on_append:  # under the lock: listeners see the ends in order
                listener(end)
            return end

    def on_append(self, listener: Callable[[Position], None]) -> None:
        """Call ``listener(end)`` after every durable append, with the spool's new end (quick and not raising: it
        runs under the append lock). The detection process learns so how far it may read."""
        self._on_append.append(listener)

    def _cut_back(self, offset: int) -> None:
        """After a failed append (disk full, I/O error): drop whatever part of it reached the segment, so that the
        records appended next follow the last intact one (a torn record in the middle would stop every reader
        there). The file is reopened: the failed writer's buffer may still hold part of the chunk."""
        with contextlib.suppress(OSError):  # its buffer could not be written either: nothing of it is kept
            self._fh.close()
        path = self.dir / _segment_name(self._segment)
        try:
            with open(path, "r+b") as fh:
                fh.truncate(offset)
                os.fsync(fh.fileno())
        except OSError:
            log.exception("spool segment %d: a failed append could not be cut off at offset %d; readers will pass "
                          "over it", self._segment, offset)
        finally:
            self._fh = open(path, "ab")  # noqa: SIM115 - kept open for appends

    def _roll(self) -> None:
        self._fh.close()
        self._segment += 1
        self._fh = open(self.dir / _segment_name(self._segment), "ab")  # noqa: SIM115
        self._dir_fd_sync()

    def end(self) -> Position:
        with self._lock:
            return Position(self._segment, self._fh.tell())

    def wait_for_data(self, after: Position, timeout: float) -> None:
        """Block until something was appended beyond ``after`` (or the timeout passes)."""
        with self._lock:
            if Position(self._segment, self._fh.tell()) <= after:
                self._appended.wait(timeout)

    # --- consuming ----------------------------------------------------------------------------------------
    def commit(self, position: Position) -> None:
        """Record that everything before ``position`` is stored; drop segments wholly behind it."""
        self._write_durably(CHECKPOINT, f"{position.segment} {position.offset}\n")
        for number in self.segments():
            if number < position.segment:
                (self.dir / _segment_name(number)).unlink(missing_ok=True)

    def read(self, start: Position, max_records: int = 5000,
             until: Position | None = None) -> tuple[list[SpooledRecord], Position]:
        """Up to ``max_records`` complete records from ``start`` (and before ``until``), and the position after."""
        # Appends are durable when end() can see them (it waits for the append lock): reading only up to it, no
        # reader takes a record whose fsync has not returned, and a segment counts as finished only if a newer
        # one existed before the read began (not because one was rolled over while this segment was being read).
        durable = self.end()
        return super().read(start, max_records, durable if until is None or durable < until else until)

    def backlog_bytes(self) -> int:
        """Bytes appended but not yet consumed."""
        return self.bytes_after(self.checkpoint())

    def bytes_after(self, start: Position) -> int:
        """Bytes in the spool's segments after ``start``."""
        total = 0
        for number in self.segments():
            try:
                size = (self.dir / _segment_name(number)).stat().st_size
            except FileNotFoundError:  # dropped by a commit meanwhile
                continue
            if number > start.segment:
                total += size
            elif number == start.segment:
                total += max(0, size - start.offset)
        return total

    def _repair_tail(self, segment: int) -> None:
        """Cut a torn record off the end of the newest segment (a crash during append)."""
        path = self.dir / _segment_name(segment)
        if not path.exists():
            return
        good, records, size = 0, [], path.stat().st_size
        while True:  # the offset after the last intact record (read as the consumer reads, a block at a time)
            after = self._read_segment(path, Position(segment, good), REPAIR_RECORDS, None, records)
            records.clear()
            if after == good:
                resume = self._skip_damage(path, Position(segment, good), size)
                if resume is None:
                    break
                after = resume  # damage with intact records after it is no torn tail: readers pass over it
            good = after
        if good < size:
            log.warning("spool segment %d: a torn record of %d bytes cut off its end (an append the crash "
                        "interrupted, never acknowledged)", segment, size - good)
            with open(path, "r+b") as fh:
                fh.truncate(good)
                os.fsync(fh.fileno())

    def close(self) -> None:
        with self._lock:
            self._fh.close()
