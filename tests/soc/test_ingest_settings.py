"""Process-wide settings an ingest run changes while it runs: GC thresholds and the thread switch interval."""

from __future__ import annotations

import gc
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from soc.pipeline import INGEST_GC_THRESHOLDS, INGEST_SWITCH_INTERVAL, ingest_gc, short_switch_interval


@pytest.fixture
def default_interval() -> Iterator[float]:
    saved = sys.getswitchinterval()
    sys.setswitchinterval(0.005)
    yield 0.005
    sys.setswitchinterval(saved)


def test_switch_interval_is_shortened_while_nested_uses_last(default_interval: float) -> None:
    with short_switch_interval():
        assert sys.getswitchinterval() == pytest.approx(INGEST_SWITCH_INTERVAL)
        with short_switch_interval():
            assert sys.getswitchinterval() == pytest.approx(INGEST_SWITCH_INTERVAL)
        assert sys.getswitchinterval() == pytest.approx(INGEST_SWITCH_INTERVAL)  # the outer use still holds it
    assert sys.getswitchinterval() == pytest.approx(default_interval)


def test_a_shorter_interval_already_set_is_kept(default_interval: float) -> None:
    sys.setswitchinterval(INGEST_SWITCH_INTERVAL / 5)
    shorter = pytest.approx(INGEST_SWITCH_INTERVAL / 5, rel=0.02)  # CPython keeps whole microseconds
    with short_switch_interval():
        assert sys.getswitchinterval() == shorter
    assert sys.getswitchinterval() == shorter


def test_concurrent_users_share_one_change_restored_by_the_last(default_interval: float) -> None:
    inside, release = threading.Barrier(3), threading.Event()

    def user() -> None:
        with short_switch_interval():
            inside.wait()
            release.wait()

    threads = [threading.Thread(target=user) for _ in range(2)]
    for thread in threads:
        thread.start()
    inside.wait()
    assert sys.getswitchinterval() == pytest.approx(INGEST_SWITCH_INTERVAL)
    release.set()
    for thread in threads:
        thread.join()
    assert sys.getswitchinterval() == pytest.approx(default_interval)


def test_gc_thresholds_are_raised_and_restored_even_after_an_error() -> None:
    saved = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)
        with pytest.raises(RuntimeError), ingest_gc():
            assert gc.get_threshold() == INGEST_GC_THRESHOLDS
            raise RuntimeError("parse failed")
        assert gc.get_threshold() == (700, 10, 10)
    finally:
        gc.set_threshold(*saved)


def test_pipeline_run_uses_the_short_interval(default_interval: float, tmp_path: Path) -> None:
    from soc.deadletter import DeadLetterStore
    from soc.enrich import Enricher, RegisterIndex
    from soc.pipeline import Pipeline, RawRecord
    from soc.store.sqlite import SQLiteStore

    seen: list[float] = []
    store, dead = SQLiteStore(tmp_path / "e.db"), DeadLetterStore(tmp_path / "d.db")
    run = Pipeline(store, dead, Enricher(RegisterIndex()),
                   after_write=lambda batch: seen.append(sys.getswitchinterval()))
    try:
        run.run([RawRecord("file:/t:0", b'{"@timestamp": "2026-11-20T03:00:00Z", "message": "m"}')], "json")
        assert seen == [pytest.approx(INGEST_SWITCH_INTERVAL)]
        assert sys.getswitchinterval() == pytest.approx(default_interval)
    finally:
        store.close()
        dead.close()


@pytest.fixture
def classic_gc() -> Iterator[None]:
    """CPython's default collector thresholds for the test, whatever they were before."""
    saved = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield
    gc.set_threshold(*saved)


@contextmanager
def _consumer(tmp_path: Path, detection: object = None, remote: object = None) -> Iterator[Any]:
    """A spool consumer over fresh stores (closed afterwards), with ``detection`` as its thread's stage or
    ``remote`` as detection elsewhere."""
    from soc.consumer import SpoolConsumer
    from soc.deadletter import DeadLetterStore
    from soc.enrich import Enricher, RegisterIndex
    from soc.pipeline import Pipeline
    from soc.spool import Spool
    from soc.store.sqlite import SQLiteStore

    store, dead, spool = SQLiteStore(tmp_path / "e.db"), DeadLetterStore(tmp_path / "d.db"), Spool(tmp_path / "spool")
    consumer = SpoolConsumer(spool, Pipeline(store, dead, Enricher(RegisterIndex())), retry_seconds=0.05,
                             detection=detection, remote_detection=remote)  # type: ignore[arg-type]
    try:
        yield consumer
    finally:
        consumer.stop()
        spool.close()
        store.close()
        dead.close()


@pytest.mark.usefixtures("classic_gc")
def test_spool_consumer_holds_the_short_interval_and_gc_thresholds_while_it_runs(default_interval: float,
                                                                                 tmp_path: Path) -> None:
    from soc.alerts.stage import DetectionStage, load_configured_rules
    from soc.detect.engine import Detector

    # detection as a thread of this process: parsed batches are held in the hand-off between the two threads
    stage = DetectionStage(Detector(load_configured_rules([])), None, None)  # type: ignore[arg-type]
    with _consumer(tmp_path, stage) as consumer:
        assert sys.getswitchinterval() == pytest.approx(default_interval)  # built, not started: nothing changed
        assert gc.get_threshold() == (700, 10, 10)
        consumer.start()
        assert sys.getswitchinterval() == pytest.approx(INGEST_SWITCH_INTERVAL)
        # held between batches too (not only while one is parsed): the hand-off keeps parsed batches alive
        assert gc.get_threshold() == INGEST_GC_THRESHOLDS
        consumer.stop()
        assert sys.getswitchinterval() == pytest.approx(default_interval)
        assert gc.get_threshold() == (700, 10, 10)


@pytest.mark.usefixtures("classic_gc")
@pytest.mark.parametrize("elsewhere", [False, True], ids=["detection off", "detection in another process"])
def test_a_consumer_without_detection_here_leaves_the_gc_thresholds(tmp_path: Path, elsewhere: bool) -> None:
    """Nothing is held between batches without a detection thread."""
    from tests.soc.test_detection_process import _Reported

    with _consumer(tmp_path, remote=_Reported() if elsewhere else None) as consumer:
        consumer.start()
        assert gc.get_threshold() == (700, 10, 10)
