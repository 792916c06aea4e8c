"""An embedded store's writes in a process of their own, for a long import (``SQLiteStore.writes_in_child``).

In one process the parsing thread, the writer thread and the side index's thread take turns on one GIL: the writer
needs it to bind every row's values and again after every SQLite step, and parsing is Python all the way, so a
million-line import on two CPUs kept them 77% busy. With the writes (and the side index that follows them) in a child
process, the parent's GIL is its parser's, and SQLite runs beside it on the other CPU.

The child (``python -m soc.store.writer_process EVENTS_FILE``) opens the store itself and reads requests on its
standard input: frames of an 8-byte length and the rows the parent encoded (``SQLiteStore.encode``, which packs them
a few at a time: ``PackedRows``), as ``marshal`` data (it writes a corpus row in 1.4 µs against 3.4 for ``pickle``,
and rows hold only strings, numbers and bytes; anything else goes as a pickle). Each reply on its standard output is
the write's result, or the store's being unavailable. Its standard input ending (the parent closing it, or gone after
``kill -9``) ends it once the write in hand is committed; ids are deterministic, so the next run writes again only
what was not committed.
"""

from __future__ import annotations

import contextlib
import marshal
import os
import pickle
import signal
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from soc.store.base import EncodedBatch, StoreUnavailable, WriteResult

_LENGTH = struct.Struct("<Q")
_MARSHAL, _PICKLE = b"M", b"P"
# marshal format 2, without the references of format 3 and later: writing those looks up every object with more than
# one reference (the rows' shared texts and address keys) in a table. 20,000 corpus rows: written in 0.84 µs a row
# against 1.43, read in 0.91 against 0.71 (the reader makes each shared text again), a fifth more bytes.
MARSHAL_VERSION = 2
_PROJECT_ROOT = Path(__file__).resolve().parents[2]  # what the child needs on its path to import soc
# The child's nice value (raised from the parent's). Parsing is the import's critical path, a single GIL-bound thread;
# the child's two threads (writes, side index) can run whenever a CPU is free. At the same priority the scheduler gave
# the three threads equal shares of the two CPUs and parsing ran about 75% of the time; with the child at 10 the two
# CPUs were 91-92% busy against 88-89% (a million corpus lines, alternating runs, 2026-12-03). It also leaves a bulk
# import's writes behind the console and the receivers of a control plane on the same machine.
WRITER_NICE = 10


def _dumps(value: Any) -> bytes:
    try:
        return _MARSHAL + marshal.dumps(value, MARSHAL_VERSION)
    except ValueError:  # an object marshal does not know
        return _PICKLE + pickle.dumps(value, protocol=5)


def _loads(data: bytes) -> Any:
    body = memoryview(data)[1:]
    return marshal.loads(body) if data[:1] == _MARSHAL else pickle.loads(body)


class PackedRows:
    """Rows in the writer process's wire form (``_dumps``), a few at a time: packed by the parsing thread while the
    rows are in its CPU's caches (``SQLiteStore.encode`` while writing through a child), the thread handing a group
    to the child only joins the parts. Marshalling a 20,000-row group at once held the parent's GIL about 2 µs a row
    (the rows long out of the caches) while parsing waited for it. A payload of ``EncodedBatch``: sized, extended by
    another (or by a list of rows, packed then), iterated as the rows."""

    __slots__ = ("count", "parts")

    def __init__(self, parts: list[bytes] | None = None, count: int = 0):
        self.parts: list[bytes] = [] if parts is None else parts
        self.count = count

    @classmethod
    def of(cls, rows: list[tuple[Any, ...]]) -> PackedRows:
        """``rows`` packed (in one part)."""
        return cls([_dumps(rows)], len(rows)) if rows else cls()

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return iter(unpacked(self.parts))

    def extend(self, other: PackedRows | list[tuple[Any, ...]]) -> None:
        """Append ``other``'s rows."""
        if isinstance(other, PackedRows):
            self.parts.extend(other.parts)
            self.count += other.count
        elif other:
            self.parts.append(_dumps(list(other)))
            self.count += len(other)


def unpacked(parts: list[bytes]) -> list[tuple[Any, ...]]:
    """The rows of packed parts, in order."""
    return [row for part in parts for row in _loads(part)]


def rows_of(payload: PackedRows | list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """The rows of an encoded payload, packed or not."""
    return unpacked(payload.parts) if isinstance(payload, PackedRows) else payload


def request_of(encoded: EncodedBatch) -> bytes:
    """The request frame's data for a write of ``encoded``: its packed parts (a list payload packed whole), what the
    store rejected, whether a row holds a list."""
    payload = encoded.payload
    packed = payload if isinstance(payload, PackedRows) else PackedRows.of(payload)
    return _dumps((packed.parts, encoded.rejected, encoded.lists))


def send_frame(out: IO[bytes], data: bytes) -> None:
    """Write one frame (its length, then ``data``) and flush it."""
    out.write(_LENGTH.pack(len(data)))
    out.write(data)
    out.flush()


def read_frame(source: IO[bytes]) -> bytes | None:
    """The next frame's data; None at the end of the stream (or a frame cut off by it)."""
    head = source.read(_LENGTH.size)
    if len(head) < _LENGTH.size:
        return None
    (length,) = _LENGTH.unpack(head)
    data = source.read(length)
    return data if len(data) == length else None


class WriterProcess:
    """The parent's end: ``write`` hands encoded rows to the child and returns its result. Safe to share between
    threads (one request at a time). A child that has ended (killed, crashed) makes ``write`` raise
    StoreUnavailable, and the next ``write`` starts another."""

    def __init__(self, events_path: Path):
        self.events_path = Path(events_path)
        self._lock = threading.Lock()
        self._child: subprocess.Popen[bytes] | None = None

    def _started(self) -> subprocess.Popen[bytes]:
        if self._child is None or self._child.poll() is not None:
            env = dict(os.environ)
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_PROJECT_ROOT), env.get("PYTHONPATH")]))
            self._child = subprocess.Popen(
                [sys.executable, "-m", "soc.store.writer_process", str(self.events_path.resolve())],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        return self._child

    def write(self, encoded: EncodedBatch) -> WriteResult:
        """Write ``encoded`` (rows of ``SQLiteStore.encode``) through the child, in one transaction there."""
        request = request_of(encoded)
        with self._lock:
            child = self._started()
            assert child.stdin is not None and child.stdout is not None
            try:
                send_frame(child.stdin, request)
                reply = read_frame(child.stdout)
            except OSError:  # the pipe broke: the child is gone
                reply = None
            if reply is None:
                code = child.wait()
                self._child = None
                for pipe in (child.stdin, child.stdout):
                    with contextlib.suppress(OSError):  # (unsent bytes of a broken pipe)
                        pipe.close()
                raise StoreUnavailable(f"embedded store {self.events_path}: its writer process ended (exit code "
                                       f"{code})")
        kind, *rest = _loads(reply)
        if kind == "unavailable":
            raise StoreUnavailable(rest[0])
        created, duplicates, rejected = rest
        return WriteResult(created=created, duplicates=duplicates, rejected=[tuple(r) for r in rejected])

    def close(self) -> None:
        """End the child once it has written what it was given."""
        with self._lock:
            child, self._child = self._child, None
            if child is not None:
                assert child.stdin is not None and child.stdout is not None
                child.stdin.close()
                child.wait()
                child.stdout.close()


def serve(events_path: str, requests: IO[bytes], replies: IO[bytes]) -> None:
    """The child's loop: write each request's rows into the store at ``events_path`` and reply, until the requests
    end (or the parent is gone)."""
    from soc.store.sqlite import SQLiteStore  # (the store imports this module)

    store = SQLiteStore(events_path)
    try:
        while (request := read_frame(requests)) is not None:
            parts, rejected, lists = _loads(request)
            rows = unpacked(parts)
            del parts
            try:
                result = store.write_encoded(EncodedBatch(payload=rows, rejected=[tuple(r) for r in rejected],
                                                          lists=lists))
                reply: tuple[Any, ...] = ("written", result.created, result.duplicates, result.rejected)
            except StoreUnavailable as exc:
                reply = ("unavailable", str(exc))
            try:
                send_frame(replies, _dumps(reply))
            except BrokenPipeError:  # the parent is gone; what it sent is committed
                return
    finally:
        store.close()


def main(argv: list[str] | None = None) -> int:
    """``python -m soc.store.writer_process EVENTS_FILE``: requests on standard input, replies on standard output
    (anything else printed goes to standard error)."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m soc.store.writer_process EVENTS_FILE", file=sys.stderr)
        return 2
    # Ctrl-C reaches the whole process group: the parent stops, and this process ends when its input does (after
    # committing the write in hand) rather than in the middle of it
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.nice(WRITER_NICE)
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    serve(args[0], sys.stdin.buffer, replies)
    return 0


if __name__ == "__main__":
    sys.exit(main())
