"""The detection stage of the ingest pipeline: stored events → Sigma rules → alerts in the database."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from soc.alerts.service import AlertService, Detection, detections
from soc.detect.engine import Detector
from soc.detect.loader import BUILTIN_RULES, RuleSet, ecs_pipeline, load_rules
from soc.metrics import SocMetrics

log = logging.getLogger("yunshu.soc.detect")


def load_configured_rules(extra_dirs: list[Path]) -> RuleSet:
    """Yunshu's own rules (ECS field names) plus the configured folders (SigmaHQ names, mapped to ECS)."""
    ruleset = load_rules([BUILTIN_RULES])
    if extra_dirs:
        extra = load_rules(extra_dirs, ecs_pipeline())
        ruleset.rules += extra.rules
        ruleset.correlations += extra.correlations
        ruleset.errors += extra.errors
    for error in ruleset.errors:
        log.warning("rule not loaded: %s: %s", error.path, error.reason)
    return ruleset


class DetectionStage:
    """Called with each batch the store accepted; records alerts for the rules that fire."""

    def __init__(self, detector: Detector, transaction: Callable[[], AbstractContextManager[Session]],
                 alerts: AlertService, metrics: SocMetrics | None = None):
        self.detector = detector
        self.transaction = transaction
        self.alerts = alerts
        self.metrics = metrics

    def evaluate(self, batch: list[tuple[str, dict[str, Any]]]) -> Iterator[Detection]:
        for event_id, event in batch:
            matched, correlated = self.detector.process(event)
            if matched or correlated:
                yield from detections(event_id, event, matched, correlated)

    def __call__(self, batch: list[tuple[str, dict[str, Any]]]) -> None:
        before = self.detector.eval_seconds
        found = list(self.evaluate(batch))
        if self.metrics is not None:
            self.metrics.rule_seconds.inc(self.detector.eval_seconds - before)
            self.metrics.correlation_state.set(self.detector.correlator.state_size)
        if not found:
            return
        with self.transaction() as session:
            recorded = self.alerts.record(session, found)
            if self.metrics is not None:
                for d in found:
                    self.metrics.detections.labels(d.rule_id).inc()
                for alert in recorded.created.values():
                    self.metrics.alerts.labels(alert.severity, alert.rule_id).inc()
