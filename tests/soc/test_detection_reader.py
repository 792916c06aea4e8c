"""The detection reader parses a batch a chunk at a time, just before the chunk's events go through the rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from soc.deadletter import DeadLetterStore
from soc.detection_reader import PARSE_CHUNK, parse_records, parsed_in_chunks
from soc.enrich import Enricher, RegisterIndex
from soc.pipeline import Pipeline
from soc.spool import SpooledRecord
from soc.store.sqlite import SQLiteStore

SOURCES = ("syslog|udp:198.18.0.5", "syslog|tcp:198.18.0.6", "json|http:10.0.0.7")


def _records(n: int) -> list[SpooledRecord]:
    """Runs of different lengths from three sources, a dead letter now and then."""
    records = []
    for i in range(n):
        source = SOURCES[(i // 7) % len(SOURCES)]
        if source.startswith("json"):
            good = b'{"@timestamp": "2026-11-21T02:00:00Z", "message": "m%d"}' % i
            raw = b'{"message": "bad' if i % 11 == 0 else good
        else:
            raw = (b"<38>Nov 21 10:%02d:%02d web01 sshd[4242]: Failed password for root from 203.0.113.%d port %d ssh2"
                   % (i // 60 % 60, i % 60, i % 250, 40000 + i))
        records.append(SpooledRecord(source, raw, f"spool:1:{i * 100}"))
    return records


@pytest.fixture
def pipeline(tmp_path: Path) -> Pipeline:
    return Pipeline(SQLiteStore(tmp_path / "events.db"), DeadLetterStore(tmp_path / "dead.db"),
                    Enricher(RegisterIndex()))


@pytest.mark.parametrize("n", [0, 1, PARSE_CHUNK, PARSE_CHUNK + 1, 5 * PARSE_CHUNK + 3])
def test_chunks_give_what_one_parse_of_the_batch_gives(pipeline: Pipeline, n: int) -> None:
    records = _records(n)
    whole = parse_records(pipeline, records)
    groups: list = []
    events = list(parsed_in_chunks(pipeline, records, groups))
    assert events == [e for _, prepared in whole for e in prepared.events]
    assert sum(p.read for _, p in groups) == sum(p.read for _, p in whole) == n
    assert [d for _, p in groups for d in p.dead] == [d for _, p in whole for d in p.dead]
    assert [(s, e) for s, p in groups for e in p.events] == [(s, e) for s, p in whole for e in p.events]


def test_a_chunk_is_parsed_only_when_its_events_are_asked_for(pipeline: Pipeline) -> None:
    records = [r for r in _records(400) if not r.source.startswith("json")][:3 * PARSE_CHUNK]
    groups: list = []
    events = parsed_in_chunks(pipeline, records, groups)
    assert groups == []
    next(events)
    assert sum(p.read for _, p in groups) == PARSE_CHUNK  # the first chunk only
    for _ in range(PARSE_CHUNK):
        next(events)
    assert sum(p.read for _, p in groups) == 2 * PARSE_CHUNK
