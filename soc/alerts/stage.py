"""The detection stage of the ingest pipeline: stored events → Sigma rules → alerts in the database."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.runtime import Runtime
from soc.alerts.models import AlertEvent
from soc.alerts.service import AlertService, Detection, WebhookTarget, detections
from soc.detect.engine import Detector
from soc.detect.loader import BUILTIN_RULES, LoadError, RuleSet, ecs_pipeline, load_rules
from soc.metrics import SocMetrics

log = logging.getLogger("yunshu.soc.detect")


def load_configured_rules(extra_dirs: list[Path]) -> RuleSet:
    """Yunshu's own rules (ECS field names) plus the configured folders (SigmaHQ names, mapped to ECS).

    Nothing here stops detection: a rule file that does not load, or a configured folder that does not exist, is
    an entry in ``errors`` (with its path and the reason) and a warning in the log; the other rules still run.
    """
    ruleset = load_rules([BUILTIN_RULES])
    present = [d for d in extra_dirs if Path(d).exists()]
    ruleset.errors += [LoadError(str(d), None, "no such rule folder or file (soc.rules_dirs)")
                       for d in extra_dirs if not Path(d).exists()]
    if present:
        extra = load_rules(present, ecs_pipeline())
        ruleset.rules += extra.rules
        ruleset.correlations += extra.correlations
        ruleset.errors += extra.errors
    for error in ruleset.errors:
        log.warning("rule not loaded: %s: %s", error.path, error.reason)
    return ruleset


class DetectionStage:
    """Evaluates batches of events against the rules and records alerts for those that fire.

    Called with a batch (``stage(batch)``) it does both; the spool consumer calls ``detect`` and ``record``
    separately, so it can note the work in flight before the alerts are committed. Batches may come from several
    threads (the spool consumer, a drill replay, a job's events): one at a time goes through the rules, whose
    correlation windows are shared state.
    """

    def __init__(self, detector: Detector, transaction: Callable[[], AbstractContextManager[Session]],
                 alerts: AlertService, metrics: SocMetrics | None = None):
        self.detector = detector
        self.transaction = transaction
        self.alerts = alerts
        self.metrics = metrics
        # whether the correlation-state gauge is this stage's to set (not when a detection process sets it)
        self.reports_state = True
        self._rules_lock = threading.Lock()

    def evaluate(self, batch: Iterable[tuple[str, dict[str, Any]]]) -> Iterator[Detection]:
        for event_id, event in batch:
            try:
                matched, correlated = self.detector.process(event)
            except Exception:  # a rule that breaks on one odd event must not stop detection for the rest
                log.exception("detection failed on event %s; skipped", event_id)
                continue
            if matched or correlated:
                yield from detections(event_id, event, matched, correlated)

    def detect(self, batch: Iterable[tuple[str, dict[str, Any]]]) -> list[Detection]:
        """The detections in a batch (rule and correlation state advance; nothing is recorded yet). The batch may be
        an iterator that parses as it goes (``soc.detection_reader.parsed_in_chunks``)."""
        with self._rules_lock:
            before = self.detector.eval_seconds
            found = list(self.evaluate(batch))
            if self.detector.correlator.active:
                self.detector.correlator.sweep()  # groups gone quiet for longer than their window
            if self.metrics is not None:
                self.metrics.rule_seconds.inc(self.detector.eval_seconds - before)
                if self.reports_state:
                    self.metrics.correlation_state.set(self.detector.correlator.state_size)
        return found

    def record(self, found: list[Detection]) -> None:
        """Record detections as alerts in one transaction (an event already behind its rule's alert adds nothing)."""
        if not found:
            return
        with self.transaction() as session:
            recorded = self.alerts.record(session, found)
            if self.metrics is not None:
                for d in found:
                    self.metrics.detections.labels(d.rule_id).inc()
                for alert in recorded.created.values():
                    self.metrics.alerts.labels(alert.severity, alert.rule_id).inc()

    def recorded(self, rule_id: str, event_id: str) -> bool:
        """Whether the alerts hold this rule's hit on this event (a committed ``record`` call leaves one)."""
        with self.transaction() as session:
            return session.scalar(select(AlertEvent.id).where(AlertEvent.rule_id == rule_id,
                                                              AlertEvent.event_id == event_id)) is not None

    def __call__(self, batch: list[tuple[str, dict[str, Any]]]) -> None:
        self.record(self.detect(batch))


def configured_detection(rt: Runtime, metrics: SocMetrics | None) -> DetectionStage:
    """The detection stage as configured (``soc.rules_dirs``, ``soc.webhooks``): rules loaded now, alerts recorded
    through ``rt``, counted in ``metrics``."""
    settings = rt.settings.soc
    alerts = AlertService(webhooks=[WebhookTarget(w.url, w.secret, w.min_severity) for w in settings.webhooks],
                          audit=rt.audit)
    return DetectionStage(Detector(load_configured_rules(settings.rules_dirs)), rt.transaction, alerts, metrics)
