"""Detection runs ahead of the store on its own spool cursor; a crash replays it without losing or doubling alerts."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from core.runtime import Runtime
from soc.alerts.models import Alert, AlertEvent
from soc.alerts.service import AlertService
from soc.alerts.stage import DetectionStage, load_configured_rules
from soc.consumer import DETECTED, SpoolConsumer
from soc.deadletter import DeadLetterStore
from soc.detect.engine import Detector
from soc.enrich import Enricher, RegisterIndex
from soc.pipeline import Pipeline
from soc.spool import Spool, spool_source
from soc.store.base import SearchQuery, StoreUnavailable
from soc.store.sqlite import SQLiteStore
from tests.conftest import make_runtime

SOURCE = spool_source("syslog", "tcp:127.0.0.1")
BRUTE_FORCE = "f6fdcda2-afcc-40ed-aa78-6f5632dd878c"  # ten failed SSH logins from one source within 5 minutes
SUDO_SHELL = "86ccadce-77f7-4d58-97d9-e71ee1d6635e"


class Crash(BaseException):
    """Stands for kill -9: nothing after the point where it is raised happens."""


class SwitchableStore(SQLiteStore):
    down = False

    def write_encoded(self, encoded):  # type: ignore[no-untyped-def]  # write() comes here too
        if self.down:
            raise StoreUnavailable("switched off by the test")
        return super().write_encoded(encoded)


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    rt = make_runtime(tmp_path / "var")
    yield rt
    rt.close()


def _failures(first: int, n: int) -> list[tuple[str, bytes]]:
    return [(SOURCE, f"<38>Nov 20 10:00:{s:02d} bastion sshd[7]: Failed password for root from 203.0.113.9 port "
                     f"{40000 + s} ssh2".encode()) for s in range(first, first + n)]


def _sudo_shell(second: int) -> tuple[str, bytes]:
    return SOURCE, (f"<86>Nov 20 10:01:{second:02d} bastion sudo:   zhang : TTY=pts/0 ; PWD=/home/zhang ; USER=root ; "
                    "COMMAND=/bin/bash").encode()


def _consumer(home: Path, rt: Runtime, store: SQLiteStore | None = None, batch: int = 100) -> SpoolConsumer:
    """A fresh consumer (fresh detector: empty correlation windows), as after a restart."""
    store = store or SwitchableStore(home / "events.db")
    pipeline = Pipeline(store, DeadLetterStore(home / "dead.db"), Enricher(RegisterIndex()), retry_seconds=0)
    stage = DetectionStage(Detector(load_configured_rules([])), rt.transaction, AlertService())
    return SpoolConsumer(Spool(home / "spool"), pipeline, batch_records=batch, retry_seconds=0.05, detection=stage)


def _drain(consumer: SpoolConsumer) -> None:
    while consumer.detect_once():
        pass
    while consumer.drain_once():
        pass


def _alerts(rt: Runtime) -> dict[str, tuple[int, int]]:
    """rule id → (alert count, events behind it)."""
    with rt.sessions() as s:
        counts = dict(s.execute(select(Alert.rule_id, func.sum(Alert.count)).group_by(Alert.rule_id)).all())
        events = dict(s.execute(select(AlertEvent.rule_id, func.count()).group_by(AlertEvent.rule_id)).all())
    return {rule: (int(counts[rule]), events.get(rule, 0)) for rule in counts}


def _detect_first_batch_then_append_second(consumer: SpoolConsumer) -> None:
    consumer.spool.append(_failures(0, 5))  # batch 1: five failures
    assert consumer.detect_once() == 5
    # batch 2: the burst completes twice (10 + 10), and a root shell
    consumer.spool.append([*_failures(5, 15), _sudo_shell(0)])


def _wait_for(check: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_crash_after_alerts_committed_does_not_count_them_again(tmp_path: Path, runtime: Runtime) -> None:
    clean_home, clean_rt = tmp_path / "clean", make_runtime(tmp_path / "clean-var")
    try:
        clean = _consumer(clean_home, clean_rt, batch=21)
        _detect_first_batch_then_append_second(clean)
        _drain(clean)
        expected = _alerts(clean_rt)
    finally:
        clean_rt.close()
    assert expected == {BRUTE_FORCE: (20, 2), SUDO_SHELL: (1, 1)}

    home = tmp_path / "crashing"
    first = _consumer(home, runtime, batch=21)
    _detect_first_batch_then_append_second(first)

    def crash(_batch: object) -> None:
        raise Crash

    assert first.reader is not None
    first.reader._advance = crash  # type: ignore[method-assign]  # killed after the alerts committed, before the cursor moved
    with pytest.raises(Crash):
        first.detect_once()
    assert _alerts(runtime) == expected
    assert first.spool.cursor(DETECTED)[1], "the batch in flight is noted with the cursor"

    # restarted: empty correlation windows; batch 2 evaluated again alone would fire once more (10 new failures)
    second = _consumer(home, runtime, batch=21)
    assert second.detected == second.spool.end(), "the recorded batch is not evaluated again"
    _drain(second)
    assert second.detection is not None and second.detection.detector.evaluated == 0
    assert _alerts(runtime) == expected
    assert second.pipeline.store.count(SearchQuery()) == 21, "the store still gets every event"


def test_crash_before_alerts_committed_records_them_after_restart(tmp_path: Path, runtime: Runtime) -> None:
    home = tmp_path / "crashing"
    first = _consumer(home, runtime, batch=21)
    first.spool.append([_sudo_shell(1), *_failures(0, 3)])
    assert first.detection is not None

    def crash(_found: object) -> None:
        raise Crash

    first.detection.record = crash  # type: ignore[method-assign]  # killed before the alert transaction committed
    with pytest.raises(Crash):
        first.detect_once()
    assert _alerts(runtime) == {}

    second = _consumer(home, runtime, batch=21)
    assert second.detected == first.spool.checkpoint(), "the batch is evaluated again"
    _drain(second)
    assert _alerts(runtime) == {SUDO_SHELL: (1, 1)}
    assert not second.spool.cursor(DETECTED)[1], "nothing in flight once recorded"


def test_alerts_are_raised_while_the_store_is_down(tmp_path: Path, runtime: Runtime) -> None:
    home = tmp_path / "soc"
    store = SwitchableStore(home / "events.db")
    store.down = True
    consumer = _consumer(home, runtime, store)
    consumer.start()
    try:
        consumer.spool.append(_failures(0, 12))
        _wait_for(lambda: BRUTE_FORCE in _alerts(runtime))
        assert store.count(SearchQuery()) == 0 and consumer.spool.backlog_bytes() > 0
        assert consumer.spool.checkpoint() <= consumer.detected  # the store never passes detection
        store.down = False
        _wait_for(lambda: store.count(SearchQuery()) == 12 and consumer.spool.backlog_bytes() == 0)
    finally:
        consumer.stop()
    assert _alerts(runtime) == {BRUTE_FORCE: (10, 1)}


def test_store_parses_what_the_handoff_dropped(tmp_path: Path, runtime: Runtime) -> None:
    """With the hand-off full the store reads the spool itself: every event stored once, in order."""
    home = tmp_path / "soc"
    consumer = _consumer(home, runtime, batch=4)
    consumer.handoff.max_records = 4  # holds one batch
    consumer.spool.append(_failures(0, 12))
    while consumer.detect_once():
        pass
    assert consumer.handoff.held == 4
    while consumer.drain_once():
        pass
    assert consumer.pipeline.store.count(SearchQuery()) == 12
    assert consumer.spool.checkpoint() == consumer.detected == consumer.spool.end()


def test_a_cursor_that_cannot_be_saved_does_not_detect_the_batch_twice(tmp_path: Path, runtime: Runtime) -> None:
    """The alerts of a batch are committed, then saving the detected cursor fails (a full spool disk): the retry
    records the batch again (nothing twice) instead of evaluating it again, which would put its events twice into
    the correlation windows (six failed logins would pass for twelve)."""
    consumer = _consumer(tmp_path, runtime)
    consumer.spool.append(_failures(0, 6))
    save = consumer.spool.set_cursor
    failed: list[bool] = []

    def full_disk(name: str, position: object, note: str = "") -> None:
        if not note and not failed:  # the move past the batch, after its alerts were committed
            failed.append(True)
            raise OSError(28, "No space left on device")
        save(name, position, note)  # type: ignore[arg-type]

    consumer.spool.set_cursor = full_disk  # type: ignore[method-assign]
    with pytest.raises(OSError, match="No space"):
        consumer.detect_once()
    while consumer.detect_once():
        pass
    assert failed and consumer.detected == consumer.spool.end()
    assert BRUTE_FORCE not in _alerts(runtime)  # six failures: no burst of ten
