"""The SOC console pages: the health page shows the real ingest figures (events, spool backlog, dead letters and
the counters by source), scoped to the viewer's departments where the figures are per event."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from inventory.models import Host, System
from soc.store.base import SearchQuery
from tests.conftest import Portal, open_portal
from tests.test_auth import login


@pytest.fixture
def soc_portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Portal]:
    with open_portal(tmp_path_factory, "soc_pages") as opened:
        yield opened


def _wait_for(done: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _host(portal: Portal, department: str) -> str:
    with portal.rt.sessions() as s:
        return s.scalars(select(Host.name).join(System).where(System.department_code == department)
                         .order_by(Host.name)).first()


def _browser(portal: Portal, username: str) -> TestClient:
    """A logged-in console session on the running app (no second lifespan: the SOC services stay the same)."""
    browser = TestClient(portal.client.app)
    assert login(browser, username).status_code == 303
    return browser


def _kpi(page: str, element_id: str) -> str:
    found = re.search(rf'<b id="{element_id}">([^<]*)</b>', page)
    assert found, f"no #{element_id} on the page"
    return found.group(1)


def _counters(page: str, source: str) -> dict[str, int]:
    row = re.search(rf'<tr data-source="{source}">(.*?)</tr>', page, re.S)
    assert row, f"no ingest row for {source}"
    return {name: int(value) for name, value in re.findall(r'data-counter="(\w+)">(\d+)<', row.group(1))}


def test_health_page_shows_real_counters_backlog_and_dead_letters(soc_portal: Portal) -> None:
    portal = soc_portal
    analyst = portal.as_role("security_analyst")
    services = portal.client.app.state.soc
    now = datetime.now(UTC).isoformat()
    gaj, rsj = _host(portal, "GAJ"), _host(portal, "RSJ")
    docs = [{"@timestamp": now, "message": f"health {i}", "host": {"name": h}}
            for i, h in enumerate([gaj, gaj, gaj, rsj, rsj])]
    body = "\n".join([*(json.dumps(d) for d in docs), "not json at all"]).encode()
    assert portal.client.post("/api/soc/ingest", content=body, headers=analyst).json() == {"accepted": 6}
    _wait_for(lambda: services.soc.store.count(SearchQuery()) == 5 and services.soc.deadletters.count() == 1
              and services.spool.backlog_bytes() == 0)
    services.consumer.stop()  # from here on records stay in the spool: a backlog the page must show
    later = "\n".join(json.dumps({"@timestamp": now, "message": f"waiting {i}"}) for i in range(2)).encode()
    assert portal.client.post("/api/soc/ingest", content=later, headers=analyst).json() == {"accepted": 2}
    backlog = services.spool.backlog_bytes()
    assert backlog > 0

    page = _browser(portal, "security-analyst").get("/soc/health")
    assert page.status_code == 200
    for heading in ("近 24 小时事件", "缓冲积压（字节）", "死信（无法解析）",
                    "服务启动以来的采集计数（按来源）", "最近的死信", "保留期（网络安全法第二十一条：不少于六个月）"):
        assert heading in page.text, heading
    assert _kpi(page.text, "h-events") == "5"
    assert _kpi(page.text, "h-backlog") == str(backlog)
    assert _kpi(page.text, "h-dead") == "1"
    services.soc.store.wait_indexed()
    assert _kpi(_browser(portal, "security-analyst").get("/soc/health").text, "h-text-lag") == "0"
    assert "全文与字段索引待建（条）" in page.text
    # nor has detection seen them (it stopped with the consumer): its lag is the same bytes
    assert _kpi(page.text, "h-detection-lag") == str(backlog)
    assert _kpi(page.text, "h-detection") == "独立进程 · 已停止"  # the detection process stopped with the consumer
    assert _counters(page.text, "http") == {"received": 8, "spooled": 8, "parsed": 5, "stored": 5,
                                            "dead_lettered": 1, "dropped": 0}
    assert "parse error" in page.text  # the latest dead letter's reason
    english = _browser(portal, "security-analyst").get("/soc/health?lang=en")
    assert "Ingest since the service started, by source" in english.text and "Dead letters" in english.text

    # events are counted within the viewer's departments; the ingest figures are the service's
    mine = _browser(portal, "department-user").get("/soc/health")
    assert mine.status_code == 200
    assert _kpi(mine.text, "h-events") == "3"
    assert _kpi(mine.text, "h-backlog") == str(backlog)
