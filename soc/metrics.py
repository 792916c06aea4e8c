"""SOC counters, registered on the service's Prometheus registry.

The ingest counters (received, spooled, parsed, stored, dead-lettered, dropped) carry one label, ``source``: the
way a record entered the pipeline — the transports ``udp``, ``tcp``, ``http`` and ``file``, ``replay`` for a drill's
attack logs replayed (soc.drills.replay) and ``job`` for automation job events (portal.job_events); ``other`` for
anything else, so the label set (SOURCES + ``other``) stays bounded whatever senders, user names or paths appear.
Counting by ``event.dataset`` as well was left out on purpose: the dataset is known only per event, so it would cost
a dictionary look-up per event on the hot path, where every path counts once per batch; the dataset split of stored
events is on the health page (from the store) instead.

How the counters relate, per source: ``received`` = ``spooled`` + ``dropped`` + records dead-lettered before
the spool (oversize TCP frames) for the listeners and HTTP; files, replays and job events are not spooled (the
file, the scenario or the job's own record is the durable copy), so for them ``received`` = ``parsed`` +
``dead_lettered`` once a run is over. ``parsed`` counts records that became events and were accepted by the store
(new or duplicate); ``dead_lettered`` the rest.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

SOURCES = ("udp", "tcp", "http", "file", "replay", "job")
INGEST_COUNTERS = ("received", "spooled", "parsed", "stored", "dead_lettered", "dropped")


def source_label(origin: str) -> str:
    """The bounded ``source`` label of an origin: one of SOURCES, else ``other``."""
    return origin if origin in SOURCES else "other"


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
        self.dropped = Counter("yunshu_soc_dropped", "Records dropped because the receive buffer was full "
                               "(UDP only: a datagram sender cannot be slowed down)", ["source"], registry=registry)
        self.backlog = Gauge("yunshu_soc_spool_backlog_bytes", "Spooled bytes not yet stored", registry=registry)
        self.text_index_lag = Gauge("yunshu_soc_text_index_lag_rows", "Stored events the embedded store's side index "
                                    "(full text, key tables) has not reached yet", registry=registry)
        self.detections = Counter("yunshu_soc_detections", "Rule or correlation matches", ["rule"],
                                  registry=registry)
        self.alerts = Counter("yunshu_soc_alerts", "Alerts raised", ["severity", "rule"], registry=registry)
        self.rule_seconds = Counter("yunshu_soc_rule_evaluation_seconds", "Time spent evaluating rules",
                                    registry=registry)
        self.correlation_state = Gauge("yunshu_soc_correlation_state_groups",
                                       "Group windows held by correlation rules", registry=registry)
        self.detection_restarts = Counter("yunshu_soc_detection_process_restarts",
                                          "Detection processes started to replace one that ended", registry=registry)

    def count_stored(self, source: str, read: int, stored: int, dead_lettered: int) -> None:
        """Count one stored batch of ``read`` records from ``source`` (parsed = read − dead-lettered)."""
        label = source_label(source)
        self.parsed.labels(label).inc(read - dead_lettered)
        self.stored.labels(label).inc(stored)
        self.dead_lettered.labels(label).inc(dead_lettered)

    def ingest_totals(self) -> dict[str, dict[str, int]]:
        """The ingest counters so far: {source: {counter: value}} for every source counted at least once."""
        totals: dict[str, dict[str, int]] = {}
        for name in INGEST_COUNTERS:
            for family in getattr(self, name).collect():
                for sample in family.samples:
                    if sample.name.endswith("_total"):
                        source = sample.labels["source"]
                        totals.setdefault(source, dict.fromkeys(INGEST_COUNTERS, 0))[name] = int(sample.value)
        return {source: totals[source] for source in sorted(totals)}
