"""The detection reader in a process of its own: alerts, the store's limit, a killed child replaced, metrics relayed."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from core.runtime import Runtime
from core.settings import Settings
from soc.consumer import DETECTED, SpoolConsumer
from soc.deadletter import DeadLetterStore
from soc.detection_process import (
    DetectionProcess,
    MetricsRecorder,
    apply_metric_ops,
    pack_position,
    unpack_position,
)
from soc.enrich import Enricher, RegisterIndex
from soc.metrics import SocMetrics
from soc.pipeline import Pipeline
from soc.service import SocServices
from soc.spool import Position, Spool, SpoolReader
from soc.store.base import SearchQuery
from soc.store.sqlite import SQLiteStore
from tests.conftest import make_runtime
from tests.soc.test_detection_replay import BRUTE_FORCE, SOURCE, SUDO_SHELL, _alerts, _failures, _sudo_shell, _wait_for


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    rt = make_runtime(tmp_path / "var")
    assert rt.settings.soc.detection_process, "the shipped default: detection in a process of its own"
    yield rt
    rt.close()


@pytest.fixture
def services(runtime: Runtime) -> Iterator[SocServices]:
    registry = CollectorRegistry()
    running = SocServices(runtime, SocMetrics(registry))
    running.registry = registry  # type: ignore[attr-defined]
    asyncio.run(running.start())
    yield running
    asyncio.run(running.stop())


def _accept(services: SocServices, records: list[tuple[str, bytes]]) -> None:
    services.accept("tcp:127.0.0.1", "syslog", [raw for _, raw in records])


def _through(services: SocServices) -> Callable[[], bool]:
    """Detected and stored up to the spool's end."""
    return lambda: services.consumer.detected == services.spool.end() == services.spool.checkpoint()


def test_alerts_are_raised_by_a_separate_process_and_counted_here(services: SocServices, runtime: Runtime) -> None:
    child = services.detection_process
    assert child is not None and services.consumer.reader is None, "no detection thread in this process"
    assert services.detection_health()["mode"] == "process"
    _accept(services, [*_failures(0, 20), _sudo_shell(0)])
    _wait_for(lambda: _alerts(runtime) == {BRUTE_FORCE: (20, 2), SUDO_SHELL: (1, 1)})
    _wait_for(_through(services))
    assert child.process is not None and child.process.pid != os.getpid() and child.process.is_alive()
    assert services.spool.cursor(DETECTED)[0] == services.spool.end(), "the child moved the detected cursor"
    assert services.soc.store.count(SearchQuery()) == 21
    registry = services.registry  # type: ignore[attr-defined]
    assert registry.get_sample_value("yunshu_soc_detections_total", {"rule": SUDO_SHELL}) == 1
    alerts = [sample.value for metric in registry.collect() for sample in metric.samples
              if sample.name == "yunshu_soc_alerts_total" and sample.labels.get("rule") == SUDO_SHELL]
    assert alerts == [1]
    assert registry.get_sample_value("yunshu_soc_rule_evaluation_seconds_total") > 0


def test_a_killed_detection_process_is_replaced_and_detects_nothing_twice(services: SocServices,
                                                                          runtime: Runtime) -> None:
    child = services.detection_process
    assert child is not None
    child.restart_seconds = 0.1
    _accept(services, [_sudo_shell(0)])
    _wait_for(lambda: _alerts(runtime) == {SUDO_SHELL: (1, 1)})
    _wait_for(lambda: services.consumer.detected == services.spool.end())
    first = child.process
    assert first is not None and first.pid is not None
    os.kill(first.pid, signal.SIGKILL)
    _accept(services, _failures(0, 10))
    _wait_for(lambda: child.starts == 2 and _alerts(runtime) == {SUDO_SHELL: (1, 1), BRUTE_FORCE: (10, 1)})
    _wait_for(_through(services))
    assert child.process is not first and child.process is not None and child.process.is_alive()
    assert services.soc.store.count(SearchQuery()) == 11
    # the counter is not deduplicated as alerts are: the new child did not evaluate the first batch again
    registry = services.registry  # type: ignore[attr-defined]
    assert registry.get_sample_value("yunshu_soc_detections_total", {"rule": SUDO_SHELL}) == 1
    assert registry.get_sample_value("yunshu_soc_detection_process_restarts_total") == 1
    assert services.detection_health() == {"mode": "process", "lag_bytes": 0, "process_running": True,
                                           "process_starts": 2}


def test_a_service_that_cannot_listen_stops_its_detection_process(runtime: Runtime) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        runtime.settings.soc.syslog_port = taken.getsockname()[1]
        services = SocServices(runtime, SocMetrics(CollectorRegistry()), listeners=True)
        with pytest.raises(OSError):
            asyncio.run(services.start())
    child = services.detection_process
    assert child is not None and child.process is not None
    assert not child.process.is_alive(), "no detection process left behind by a start-up that failed"


def test_stopping_a_child_still_loading_its_rules_does_not_wait_for_it(runtime: Runtime, tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    child = DetectionProcess(runtime.settings, spool, SocMetrics(CollectorRegistry()))
    child.start(lambda _end: None)
    started = time.monotonic()
    child.stop(timeout=30)
    assert child.process is not None and not child.process.is_alive()
    assert child.process.exitcode == -signal.SIGKILL, "killed, not waited for"
    assert time.monotonic() - started < 10
    spool.close()


class _Reported:
    """A remote detection that reports only what the test says it has detected."""

    def __init__(self) -> None:
        self.report: Callable[[Position], None] = lambda _end: None

    def start(self, on_detected: Callable[[Position], None]) -> None:
        self.report = on_detected

    def stop(self, timeout: float) -> None:
        pass


@contextmanager
def _remote_consumer(tmp_path: Path, spool: Spool, remote: _Reported) -> Iterator[SpoolConsumer]:
    """A consumer of ``spool`` into fresh stores with detection reported by ``remote``; all closed afterwards."""
    store, dead = SQLiteStore(tmp_path / "events.db"), DeadLetterStore(tmp_path / "dead.db")
    try:
        yield SpoolConsumer(spool, Pipeline(store, dead, Enricher(RegisterIndex())), remote_detection=remote)
    finally:
        store.close()
        dead.close()
        spool.close()


def test_the_store_stops_where_the_remote_detection_stands(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    spool.append(_failures(0, 4))
    middle = spool.end()
    spool.append(_failures(4, 6))
    remote = _Reported()
    with _remote_consumer(tmp_path, spool, remote) as consumer:
        assert consumer.detected == spool.checkpoint(), "nothing detected yet: the store waits"
        assert consumer.drain_once() == 0
        remote.start(consumer._remote_advanced)
        remote.report(middle)
        assert consumer.drain_once() == 4
        assert consumer.drain_once() == 0 and spool.checkpoint() == middle
        remote.report(spool.end())
        assert consumer.drain_once() == 6
        assert consumer.pipeline.store.count(SearchQuery()) == 10


def test_the_store_resumes_at_the_saved_detected_cursor_before_the_process_reports(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    spool.append(_failures(0, 3))
    spool.set_cursor(DETECTED, spool.end())
    spool.append(_failures(3, 3))
    with _remote_consumer(tmp_path, spool, _Reported()) as consumer:
        assert consumer.detected == spool.read(spool.checkpoint(), 3)[1]
        with pytest.raises(ValueError, match="not both"):
            SpoolConsumer(spool, consumer.pipeline, detection=object(),  # type: ignore[arg-type]
                          remote_detection=_Reported())


def test_a_reader_in_another_process_reads_only_up_to_the_end_it_was_given(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    spool.append(_failures(0, 2))
    given = spool.end()
    spool.append(_failures(2, 3))
    reader = SpoolReader(tmp_path / "spool")
    with pytest.raises(ValueError, match="durable end"):
        reader.read(spool.checkpoint(), 100)
    records, after = reader.read(spool.checkpoint(), 100, given)
    assert [r.raw for r in records] == [raw for _, raw in _failures(0, 2)] and after == given
    assert len(reader.read(given, 100, spool.end())[0]) == 3
    assert records[0].source == SOURCE
    spool.close()


def test_metric_operations_recorded_in_the_child_are_done_to_the_parents_metrics() -> None:
    recorder = MetricsRecorder()
    recorder.detections.labels("rule-a").inc()  # type: ignore[attr-defined]
    recorder.detections.labels("rule-a").inc()  # type: ignore[attr-defined]
    recorder.alerts.labels("high", "rule-a").inc()  # type: ignore[attr-defined]
    recorder.rule_seconds.inc(0.25)  # type: ignore[attr-defined]
    recorder.correlation_state.set(7)  # type: ignore[attr-defined]
    ops = recorder.take()
    assert recorder.take() == [], "taken once"
    registry = CollectorRegistry()
    apply_metric_ops(SocMetrics(registry), ops)
    assert registry.get_sample_value("yunshu_soc_detections_total", {"rule": "rule-a"}) == 2
    assert registry.get_sample_value("yunshu_soc_alerts_total", {"severity": "high", "rule": "rule-a"}) == 1
    assert registry.get_sample_value("yunshu_soc_rule_evaluation_seconds_total") == 0.25
    assert registry.get_sample_value("yunshu_soc_correlation_state_groups") == 7
    with pytest.raises(ValueError, match=r"received\.inc"):
        apply_metric_ops(SocMetrics(CollectorRegistry()), [("received", ("udp",), "inc", 1.0)])


def test_the_detection_process_outlives_a_group_sigterm_and_ends_with_its_parent(runtime: Runtime,
                                                                                 tmp_path: Path) -> None:
    """SIGTERM to the process group (systemd, timeout) is for the parent, which stops the child itself; a parent
    that is gone (killed -9) ends the child through the pipe."""
    ctx = multiprocessing.get_context("spawn")
    spool = Spool(tmp_path / "spool")
    receiving, sending = ctx.Pipe(duplex=False)
    holder = ctx.Process(target=_hold_a_detection_process, args=(sending, runtime.settings, str(spool.dir)))
    holder.start()
    sending.close()
    try:
        assert receiving.poll(60), "the holder reports its child"
        pid = receiving.recv()
        os.kill(pid, signal.SIGTERM)
        time.sleep(1)
        assert _alive(pid), "SIGTERM is the parent's to act on"
        holder.kill()  # the parent gone at once, without stopping its child
        holder.join(10)
        deadline = time.monotonic() + 30
        while _alive(pid):
            assert time.monotonic() < deadline, "the detection process outlived its parent"
            time.sleep(0.1)
    finally:
        if holder.is_alive():
            holder.kill()
        spool.close()


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie counts as ended)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _hold_a_detection_process(report: Connection, settings: Settings, spool_dir: str) -> None:
    """A parent for the test to kill: starts a detection process, reports its pid once it has reported, waits."""
    child = DetectionProcess(settings, Spool(spool_dir), SocMetrics(CollectorRegistry()))
    heard = threading.Event()
    child.start(lambda _end: heard.set())
    heard.wait(60)
    assert child.process is not None
    report.send(child.process.pid)
    time.sleep(120)


def test_the_shared_end_is_one_word_that_keeps_order() -> None:
    positions = [Position(1, 0), Position(1, 64 * 1024 * 1024 + 5), Position(2, 0), Position(70_000, 12)]
    words = [pack_position(p) for p in positions]
    assert [unpack_position(w) for w in words] == positions
    assert words == sorted(words), "a later position is a larger word (the parent only moves it forward)"
    with pytest.raises(ValueError, match="out of range"):
        pack_position(Position(1, 1 << 40))


@pytest.mark.parametrize(("detection", "in_process", "mode"), [(True, False, "thread"), (False, True, "off")])
def test_detection_health_names_how_detection_runs(runtime: Runtime, detection: bool, in_process: bool,
                                                   mode: str) -> None:
    runtime.settings.soc.detection, runtime.settings.soc.detection_process = detection, in_process
    services = SocServices(runtime, SocMetrics(CollectorRegistry()))
    try:
        assert services.detection_process is None
        assert services.detection_health() == {"mode": mode, "lag_bytes": 0, "process_running": None,
                                               "process_starts": None}
    finally:
        services.spool.close()
        services.soc.close()


def test_detection_lag_counts_every_segment_behind(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", segment_bytes=300)
    for second in range(6):
        spool.append(_failures(second, 1))
    assert spool.end().segment >= 3
    with _remote_consumer(tmp_path, spool, _Reported()) as consumer:
        assert consumer.detected == Position(1, 0)
        assert consumer.detection_lag_bytes() == sum(p.stat().st_size for p in spool.dir.glob("spool-*.log"))
