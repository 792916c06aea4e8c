"""Batches from several threads (spool consumer, drill replay, job events) go through the rules one at a time."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace
from typing import Any

from soc.alerts.stage import DetectionStage


class _Probe:
    """Stands in for the Detector: notes how many threads are inside ``process`` at once."""

    def __init__(self) -> None:
        self.inside = 0
        self.most = 0
        self.seen = 0
        self.eval_seconds = 0.0
        self.correlator = SimpleNamespace(active=False, state_size=0)

    def process(self, event: dict[str, Any]) -> tuple[list, list]:
        self.inside += 1
        self.most = max(self.most, self.inside)
        time.sleep(0.0005)  # lets the other thread run, as real rule evaluation may at any bytecode
        self.seen += 1
        self.inside -= 1
        return [], []


def test_concurrent_batches_do_not_interleave_in_the_rules() -> None:
    probe = _Probe()
    stage = DetectionStage(probe, transaction=None, alerts=None)  # type: ignore[arg-type]
    batch = [(f"e{i}", {"message": str(i)}) for i in range(40)]
    threads = [threading.Thread(target=stage.detect, args=(batch,)) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert probe.seen == 120
    assert probe.most == 1
