"""Prometheus metrics: request counts and latency, and gauges of the register read at scrape time."""

from __future__ import annotations

import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.orm import Session, sessionmaker
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match

from inventory.queries import count_by
from portal.tickets.metrics import TicketLeadTimeCollector


class RegisterCollector(Collector):
    """Systems (not decommissioned) by hosting, IP stack and 等保 level."""

    def __init__(self, sessions: sessionmaker[Session]):
        self.sessions = sessions

    def collect(self) -> Iterator[GaugeMetricFamily]:
        gauges = [
            ("yunshu_systems_by_hosting", "Systems by hosting (本地机房/部门云/政务云)", "hosting"),
            ("yunshu_systems_by_network_stack", "Systems by IP stack (IPv4/双栈/IPv6)", "network_stack"),
            ("yunshu_systems_by_network_zone", "Systems by network (专网/政务外网)", "network_zone"),
            ("yunshu_systems_by_mlps_level", "Systems by 等保 level", "mlps_level"),
        ]
        with self.sessions() as session:
            for name, doc, attr in gauges:
                family = GaugeMetricFamily(name, doc, labels=[attr])
                for (value,), count in sorted(count_by(session, attr).items(), key=lambda kv: str(kv[0])):
                    family.add_metric([str(value)], count)
                yield family


class MigrationKpiCollector(Collector):
    """上云率 / 双栈率 / 专网整合率 per department and city-wide (department="_city"), read at scrape time."""

    def __init__(self, sessions: sessionmaker[Session]):
        self.sessions = sessions

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from infra.migration_kpis import migration_kpis

        families = {
            "cloud_rate": GaugeMetricFamily("yunshu_cloud_adoption_ratio",
                                            "上云率: systems on 政务云 / all systems", labels=["department"]),
            "dual_stack_rate": GaugeMetricFamily("yunshu_dual_stack_ratio",
                                                 "双栈率: dual-stack or IPv6 systems / all systems",
                                                 labels=["department"]),
            "consolidation_rate": GaugeMetricFamily("yunshu_private_network_consolidation_ratio",
                                                    "专网整合率: systems on the 电子政务外网 / all systems",
                                                    labels=["department"]),
        }
        with self.sessions() as session:
            for kpi in migration_kpis(session):
                for attr, family in families.items():
                    value = getattr(kpi, attr)
                    if value is not None:
                        family.add_metric([kpi.department], value)
        yield from families.values()


class Metrics:
    """A registry per app (so several apps can live in one process, as in tests)."""

    def __init__(self, sessions: sessionmaker[Session]):
        self.registry = CollectorRegistry()
        self.requests = Counter("yunshu_http_requests", "HTTP requests", ["method", "route", "status"],
                                registry=self.registry)
        self.latency = Histogram("yunshu_http_request_duration_seconds", "HTTP request latency",
                                 ["method", "route"], registry=self.registry)
        self.registry.register(RegisterCollector(sessions))
        self.registry.register(MigrationKpiCollector(sessions))
        self.registry.register(TicketLeadTimeCollector(sessions))  # submitted → delivered, per ticket type


def _route_template(request: Request) -> str:
    for route in request.app.router.routes:
        match, _ = route.matches(request.scope)
        if match == Match.FULL:
            return getattr(route, "path", request.url.path)
    return "unmatched"


class MetricsMiddleware(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        metrics: Metrics = request.app.state.metrics
        start = time.perf_counter()
        status = "500"  # an exception escaping the handler is answered with 500: count it as such
        try:
            response = await call_next(request)
            status = str(response.status_code)
            return response
        finally:
            route = _route_template(request)
            metrics.requests.labels(request.method, route, status).inc()
            metrics.latency.labels(request.method, route).observe(time.perf_counter() - start)
