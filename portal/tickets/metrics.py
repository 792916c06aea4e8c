"""Lead time of delivered tickets (submitted → delivered) as a Prometheus histogram per ticket type, read from the
database at scrape time (so deliveries by the CLI or another process count too)."""

from __future__ import annotations

import math
from collections.abc import Iterator

from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from portal.tickets.models import TICKET_TYPES, Ticket
from portal.tickets.service import aware

# one hour … one month
BUCKETS = (3600.0, 4 * 3600.0, 8 * 3600.0, 86400.0, 2 * 86400.0, 3 * 86400.0, 5 * 86400.0, 7 * 86400.0,
           14 * 86400.0, 30 * 86400.0)


class TicketLeadTimeCollector(Collector):
    """``yunshu_ticket_lead_time_seconds{type=…}``: seconds from submission to delivery."""

    def __init__(self, sessions: sessionmaker[Session]):
        self.sessions = sessions

    def collect(self) -> Iterator[HistogramMetricFamily]:
        family = HistogramMetricFamily("yunshu_ticket_lead_time_seconds",
                                       "Ticket lead time, submitted → delivered (工单交付周期)", labels=["type"])
        seconds: dict[str, list[float]] = {t: [] for t in TICKET_TYPES}
        with self.sessions() as session:
            rows = session.execute(select(Ticket.type, Ticket.submitted_at, Ticket.delivered_at)
                                   .where(Ticket.delivered_at.is_not(None), Ticket.submitted_at.is_not(None)))
            for type_, submitted, delivered in rows:
                seconds.setdefault(type_, []).append(
                    max(0.0, (aware(delivered) - aware(submitted)).total_seconds()))  # type: ignore[operator]
        for type_, values in seconds.items():
            buckets = [(str(b), float(sum(1 for v in values if v <= b))) for b in BUCKETS]
            buckets.append(("+Inf", float(len(values))))
            family.add_metric([type_], buckets, sum_value=math.fsum(values))
        yield family
