"""Reading a file into raw records: byte offsets as keys, blank lines skipped, the last line without a newline."""

from __future__ import annotations

from pathlib import Path

from soc.pipeline import RawRecord, file_records


def test_offsets_blank_lines_and_line_endings(tmp_path: Path) -> None:
    content = b"first\n\n  \t\nsecond\r\n\x0b\x0c\nthird without newline"
    path = tmp_path / "a.log"
    path.write_bytes(content)
    records = list(file_records(str(path)))
    prefix = f"file:{path.resolve()}:"
    assert records == [RawRecord(prefix + "0", b"first"), RawRecord(prefix + "11", b"second\r"),
                       RawRecord(prefix + "22", b"third without newline")]
    for record in records:  # each key's offset is where its line starts
        assert content[int(record.source_key.rpartition(":")[2]):].startswith(record.raw)


def test_record_fields_by_name(tmp_path: Path) -> None:
    record = RawRecord("spool:1:0", b"x")
    assert (record.source_key, record.raw) == ("spool:1:0", b"x")
