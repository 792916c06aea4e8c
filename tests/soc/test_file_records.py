"""Reading a file into raw records: byte offsets as keys, blank lines skipped, the last line without a newline."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from soc.pipeline import RawRecord, file_records


def test_offsets_blank_lines_and_line_endings(tmp_path: Path) -> None:
    content = b"first\n\n  \t\nsecond\r\n\x0b\x0c\nthird without newline"
    path = tmp_path / "a.log"
    path.write_bytes(content)
    _age(path)
    records = list(file_records(str(path)))
    prefix = f"file:{path.resolve()}:"
    assert records == [RawRecord(prefix + "0", b"first"), RawRecord(prefix + "11", b"second\r"),
                       RawRecord(prefix + "22", b"third without newline")]
    for record in records:  # each key's offset is where its line starts
        assert content[int(record.source_key.rpartition(":")[2]):].startswith(record.raw)


def test_record_fields_by_name(tmp_path: Path) -> None:
    record = RawRecord("spool:1:0", b"x")
    assert (record.source_key, record.raw) == ("spool:1:0", b"x")


def _age(path: Path, seconds: float = 3600.0) -> None:
    """Make ``path`` look untouched for ``seconds``."""
    then = time.time() - seconds
    os.utime(path, (then, then))


def _append_later(path: Path, chunks: list[bytes], every: float) -> threading.Thread:
    def run() -> None:
        for chunk in chunks:
            time.sleep(every)
            with path.open("ab") as fh:
                fh.write(chunk)
    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_a_last_line_being_written_is_read_once_whole(tmp_path: Path) -> None:
    path = tmp_path / "live.log"
    path.write_bytes(b"one\ntw")
    writer = _append_later(path, [b"o and the rest\n"], every=0.3)
    records = list(file_records(str(path), quiet_seconds=5.0, max_wait_seconds=5.0))
    writer.join()
    assert [r.raw for r in records] == [b"one", b"two and the rest"]


def test_a_last_line_still_growing_is_left_for_the_next_run(tmp_path: Path) -> None:
    path = tmp_path / "live.log"
    path.write_bytes(b"one\npart")
    writer = _append_later(path, [b"x"] * 20, every=0.05)
    records = list(file_records(str(path), quiet_seconds=0.5, max_wait_seconds=0.3))
    writer.join()
    assert [r.raw for r in records] == [b"one"]
    _age(path)  # the writer is done: the next run reads the line whole
    assert [r.raw for r in file_records(str(path))] == [b"one", b"part" + b"x" * 20]


def test_a_growing_file_is_read_up_to_its_size_when_opened(tmp_path: Path) -> None:
    path = tmp_path / "growing.log"
    path.write_bytes(b"a\nb\n")
    records = file_records(str(path))
    first = next(records)
    with path.open("ab") as fh:
        fh.write(b"c\n" * 1000)
    assert [first.raw] + [r.raw for r in records] == [b"a", b"b"]
