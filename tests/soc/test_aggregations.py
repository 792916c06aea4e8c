"""Aggregations (terms, date histogram) through the API and the CLI, scoped like the search."""

from __future__ import annotations

import json
from pathlib import Path

from soc.store.aggregate import aggregate, zone_offset_minutes
from soc.store.base import SearchQuery, split_where
from soc.store.sqlite import SQLiteStore
from tests.shared_data import LOGHUB as SHARED_LOGHUB
from tests.shared_data import require
from tests.soc.test_ingest import _cli, _hosts, _wait_for, soc_portal  # noqa: F401 — soc_portal is a fixture

LOGHUB = require(SHARED_LOGHUB)


def test_split_where_separates_cidr_and_names_bad_items() -> None:
    assert split_where(["source.ip=198.18.0.0/15", "user.name=root", "source.ip=1.2.3.4"]) == (
        {"user.name": "root", "source.ip": "1.2.3.4"}, {"source.ip": "198.18.0.0/15"})
    try:
        split_where(["user.name"])
    except ValueError as exc:
        assert "'user.name'" in str(exc)
    else:
        raise AssertionError("a filter without '=' must be refused")


def test_aggregate_keys_are_on_the_console_clock(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "e.db")
    store.write([("a", {"@timestamp": "2026-11-20T16:30:00Z", "message": "x", "user": {"name": "root"}}),
                 ("b", {"@timestamp": "2026-11-20T15:30:00Z", "message": "y", "user": {"name": "root"}})])
    answer = aggregate(store, SearchQuery(), ["user.name", "user.name"], "1d")
    store.close()
    assert zone_offset_minutes() == 480
    assert answer == {"total": 2, "terms": {"user.name": [{"key": "root", "count": 2}]},
                      "histogram": {"interval": "1d", "buckets": [
                          {"key": "2026-11-20T00:00:00+08:00", "count": 1},
                          {"key": "2026-11-21T00:00:00+08:00", "count": 1}]}}


def test_api_aggregations_are_department_scoped(soc_portal) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    client, rt, tokens = soc_portal
    analyst = {"Authorization": f"Bearer {tokens['security_analyst']}"}
    gaj, rsj = _hosts(rt, "GAJ"), _hosts(rt, "RSJ")
    docs = [{"@timestamp": f"2026-11-20T0{hour}:10:00Z", "message": f"m{i}", "host": {"name": host.name},
             "event": {"outcome": outcome}}
            for i, (hour, host, outcome) in enumerate([(1, gaj, "failure"), (1, gaj, "failure"), (2, gaj, "success"),
                                                       (2, rsj, "failure"), (3, rsj, "failure")])]
    r = client.post("/api/soc/ingest", content="\n".join(json.dumps(d) for d in docs).encode(), headers=analyst)
    assert r.status_code == 202
    _wait_for(lambda: client.get("/api/soc/events", headers=analyst).json()["total"] == 5)

    everything = client.get("/api/soc/aggregations?terms=gov.department&terms=event.outcome&interval=1h",
                            headers=analyst).json()
    assert everything["total"] == 5
    assert everything["terms"]["gov.department"] == [{"key": "GAJ", "count": 3}, {"key": "RSJ", "count": 2}]
    assert everything["terms"]["event.outcome"] == [{"key": "failure", "count": 4}, {"key": "success", "count": 1}]
    assert everything["histogram"] == {"interval": "1h", "buckets": [
        {"key": "2026-11-20T09:00:00+08:00", "count": 2}, {"key": "2026-11-20T10:00:00+08:00", "count": 2},
        {"key": "2026-11-20T11:00:00+08:00", "count": 1}]}

    filtered = client.get("/api/soc/aggregations?terms=event.outcome&where=gov.department=RSJ"
                          "&from=2026-11-20T11:00:00%2B08:00", headers=analyst).json()
    assert filtered == {"total": 1, "terms": {"event.outcome": [{"key": "failure", "count": 1}]}}

    dept_user = {"Authorization": f"Bearer {tokens['department_user']}"}
    mine = client.get("/api/soc/aggregations?terms=gov.department", headers=dept_user).json()
    assert mine["total"] == 3 and mine["terms"]["gov.department"] == [{"key": "GAJ", "count": 3}]

    bad = client.get("/api/soc/aggregations?interval=1w", headers=analyst)
    assert bad.status_code == 422 and "1h" in bad.text
    assert client.get("/api/soc/aggregations?where=nonsense", headers=analyst).status_code == 422


def test_cli_stats_prints_json_lines(tmp_path: Path) -> None:
    home = tmp_path / "var"
    assert _cli(home, "soc", "ingest", str(LOGHUB / "Linux_2k.log")).returncode == 0
    done = _cli(home, "soc", "stats", "--terms", "event.action", "--interval", "1d", "--where",
                "event.dataset=system.auth", "--size", "3")
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    total = lines[0]
    assert total["agg"] == "total" and total["count"] > 0
    terms = [line for line in lines if line["agg"] == "terms"]
    assert len(terms) == 3 and all(t["field"] == "event.action" for t in terms)
    assert [t["count"] for t in terms] == sorted((t["count"] for t in terms), reverse=True)
    days = [line for line in lines if line["agg"] == "date_histogram"]
    assert days and sum(d["count"] for d in days) == total["count"]
    assert all(d["key"].endswith("T00:00:00+08:00") for d in days)

    bad = _cli(home, "soc", "stats", "--where", "oops")
    assert bad.returncode == 2 and "field=value" in bad.stderr
    bad_interval = _cli(home, "soc", "stats", "--interval", "7d")
    assert bad_interval.returncode == 2 and "invalid choice" in bad_interval.stderr
