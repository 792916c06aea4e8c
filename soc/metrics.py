"""SOC counters, registered on the service's Prometheus registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class SocMetrics:
    def __init__(self, registry: CollectorRegistry | None = None):
        registry = registry or CollectorRegistry()
        self.received = Counter("yunshu_soc_received", "Records received", ["source"], registry=registry)
        self.spooled = Counter("yunshu_soc_spooled", "Records written to the disk spool", ["source"],
                               registry=registry)
        self.parsed = Counter("yunshu_soc_parsed", "Records parsed into events", ["source"], registry=registry)
        self.stored = Counter("yunshu_soc_stored", "Events newly stored", ["source"], registry=registry)
        self.dead_lettered = Counter("yunshu_soc_dead_lettered", "Records sent to the dead-letter store",
                                     ["source"], registry=registry)
        self.backlog = Gauge("yunshu_soc_spool_backlog_bytes", "Spooled bytes not yet stored", registry=registry)
        self.detections = Counter("yunshu_soc_detections", "Rule or correlation matches", ["rule"],
                                  registry=registry)
        self.alerts = Counter("yunshu_soc_alerts", "Alerts raised", ["severity", "rule"], registry=registry)
        self.rule_seconds = Counter("yunshu_soc_rule_evaluation_seconds", "Time spent evaluating rules",
                                    registry=registry)
        self.correlation_state = Gauge("yunshu_soc_correlation_state_groups",
                                       "Group windows held by correlation rules", registry=registry)
