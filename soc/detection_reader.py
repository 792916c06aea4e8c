"""The detection reader: the spool from its ``detected`` cursor → parse and enrich → the rules → alerts → cursor.

It runs as a thread of the spool consumer (``soc.consumer``) or alone in a process of its own
(``soc.detection_process``); either way it is the only one to move the ``detected`` cursor. Each event is detected
once: before recording a batch's alerts the reader saves, with the cursor, the batch's end and its first detection;
on restart, if that detection is in the alert database the record committed and the batch is skipped, otherwise it
is evaluated again (and rule hits are keyed by event id besides). Correlation windows live in memory: a restart
starts them empty.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import groupby
from typing import TYPE_CHECKING

from soc.ecs import Event
from soc.pipeline import Pipeline, Prepared
from soc.spool import Position, SpooledRecord, SpoolReader, source_format, source_sender

if TYPE_CHECKING:
    from soc.alerts.service import Detection
    from soc.alerts.stage import DetectionStage

log = logging.getLogger("yunshu.soc.detect")
DETECTED = "detected"  # the spool cursor of the detection reader
# records parsed at a time, just before their events go through the rules: a whole batch parsed first (up to 5,000
# events) no longer fits the CPU's caches, and detection then read every event's dicts back from memory (parse +
# detect measured 26.9 µs an event in chunks of 256, 15.9 in chunks of 64, 15.6 one at a time; README "Detection")
PARSE_CHUNK = 32
BATCH_RECORDS = 5000  # spool records a batch at most (the correlation windows are swept after each)


@dataclass
class ParsedBatch:
    """Spool records [start, end) parsed and enriched, grouped by source in spool order."""

    start: Position
    end: Position
    groups: list[tuple[str, Prepared]]

    @property
    def records(self) -> int:
        return sum(prepared.read for _, prepared in self.groups)


def parse_records(pipeline: Pipeline, records: list[SpooledRecord]) -> list[tuple[str, Prepared]]:
    """Spool records parsed and enriched, grouped by source (each run of one source prepared with its format and
    sender); a dead letter names the sender (the spool place goes with its segment)."""
    groups = [(source, pipeline.prepare(group, source_format(source), source_sender(source)))
              for source, group in groupby(records, key=lambda r: r.source)]
    for source, prepared in groups:
        if prepared.dead:
            prepared.dead = [(f"{source} {key}", reason, raw) for key, reason, raw in prepared.dead]
    return groups


def parsed_in_chunks(pipeline: Pipeline, records: list[SpooledRecord],
                     groups: list[tuple[str, Prepared]]) -> Iterator[tuple[str, Event]]:
    """The events of ``records`` (event id, event), parsed PARSE_CHUNK records at a time as they are asked for: the
    groups of each chunk (as ``parse_records`` makes them) are appended to ``groups``, all of them once the
    iterator is exhausted."""
    for at in range(0, len(records), PARSE_CHUNK):
        chunk = parse_records(pipeline, records[at:at + PARSE_CHUNK])
        groups.extend(chunk)
        for _, prepared in chunk:
            yield from prepared.events


def _position(text: str) -> Position:
    segment, offset = text.split(":")
    return Position(int(segment), int(offset))


class DetectionReader:
    """Detects batch after batch from the ``detected`` cursor; ``on_advance(batch)`` is called once a batch is
    through (its alerts recorded and the cursor moved past it)."""

    def __init__(self, spool: SpoolReader, pipeline: Pipeline, detection: DetectionStage, end: Position,
                 on_advance: Callable[[ParsedBatch], None], batch_records: int = BATCH_RECORDS):
        self.spool = spool
        self.pipeline = pipeline
        self.detection = detection
        self.on_advance = on_advance
        self.batch_records = batch_records
        self._unrecorded: tuple[ParsedBatch, list[Detection]] | None = None  # detected, alerts not yet committed
        self.detected = self._resume(end)

    def _resume(self, end: Position) -> Position:
        """Where detection goes on after a restart: its cursor, past a batch whose alerts were committed (``end``:
        the spool's durable end)."""
        checkpoint = self.spool.checkpoint()
        saved = self.spool.cursor(DETECTED)
        if saved is None:
            return checkpoint  # detection newly switched on: it starts where the store stands
        position, note = saved
        if note:
            pending = json.loads(note)
            if self.detection.recorded(pending["rule_id"], pending["event_id"]):
                position = _position(pending["end"])
                log.info("detection resumes after a batch whose alerts were recorded before the restart")
            self.spool.set_cursor(DETECTED, position)
        return min(max(position, checkpoint), end)  # (past the end only if the disk lost appends)

    def detect_once(self, until: Position | None = None) -> int:
        """Detect on one batch from the detected cursor (up to ``until``: a durable end, required when the spool is
        only read here); returns how many records were consumed."""
        if self._unrecorded is not None:  # recording failed last time: record again, do not detect twice
            batch, found = self._unrecorded
            self._record(batch, found)
            return batch.records
        start = self.detected
        records, end = self.spool.read(start, self.batch_records, until)
        if not records:
            if end != start:
                self._advance(ParsedBatch(start, end, []))  # moved into a newer segment
            return 0
        groups: list[tuple[str, Prepared]] = []
        found = self.detection.detect(parsed_in_chunks(self.pipeline, records, groups))
        batch = ParsedBatch(start, end, groups)
        self._unrecorded = (batch, found)
        self._record(batch, found)
        return len(records)

    def _record(self, batch: ParsedBatch, found: list[Detection]) -> None:
        if found:
            first = found[0]
            note = json.dumps({"end": f"{batch.end.segment}:{batch.end.offset}", "rule_id": first.rule_id,
                               "event_id": first.event_id})
            self.spool.set_cursor(DETECTED, batch.start, note)
            self.detection.record(found)
        self._advance(batch)
        # only now: should moving the cursor fail (a full disk), the retry records again (nothing twice) rather than
        # evaluate the batch again (its events would count twice in the correlation windows)
        self._unrecorded = None

    def _advance(self, batch: ParsedBatch) -> None:
        self.spool.set_cursor(DETECTED, batch.end)
        self.detected = batch.end
        self.on_advance(batch)
