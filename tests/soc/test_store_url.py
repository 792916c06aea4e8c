"""``yunshu soc ingest/search --store URL`` end to end: the real command line against a real osmem-server.

osmem-server refuses the elasticsearch client's compatibility media type (406); the product's store must find
that out itself, with nothing from the tests in between.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_cli
from tests.soc.osmem import es_client, osmem_server

# ECS documents (the json format keeps them as they are), one line that is not JSON, and times across three days.
EVENTS: list[dict[str, Any]] = [
    {"@timestamp": "2026-11-20T08:00:00Z", "message": "Failed password for root from 198.18.0.1",
     "event": {"dataset": "system.auth", "outcome": "failure"}, "user": {"name": "root"},
     "source": {"ip": "198.18.0.1"}},
    {"@timestamp": "2026-11-20T09:00:00Z", "message": "Accepted password for alice from 198.18.0.2",
     "event": {"dataset": "system.auth", "outcome": "success"}, "user": {"name": "alice"},
     "source": {"ip": "198.18.0.2"}},
    {"@timestamp": "2026-11-21T08:00:00Z", "message": "Failed password for root from 2001:db8::5",
     "event": {"dataset": "system.auth", "outcome": "failure"}, "user": {"name": "root"},
     "source": {"ip": "2001:db8::5"}},
    {"@timestamp": "2026-11-22T08:00:00Z", "message": "Failed password for bob from 198.18.0.3",
     "event": {"dataset": "system.auth", "outcome": "failure"}, "user": {"name": "bob"},
     "source": {"ip": "198.18.0.3"}},
]
NOT_JSON = "{this line is not JSON"


@dataclass
class Env:
    home: Path
    url: str
    log: Path

    def cli(self, *args: str) -> Any:
        result = run_cli(self.home, *args, timeout=180)
        assert result.returncode == 0, f"yunshu {' '.join(args)} failed:\n{result.stderr}"
        return result

    def search(self, *args: str) -> list[dict[str, Any]]:
        """``soc search --store URL ARGS`` → the events printed, one JSON object per line."""
        result = self.cli("soc", "search", "--store", self.url, *args)
        events = [json.loads(line) for line in result.stdout.splitlines()]
        assert f"{len(events)} of {len(events)} events" in result.stderr  # limit not reached: all shown
        return events


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Env, dict[str, Any], dict[str, Any]]]:
    """One osmem-server with the events ingested twice through the command line (stats of both runs)."""
    base = tmp_path_factory.mktemp("store_url")
    log = base / "auth.jsonl"
    lines = [json.dumps(event) for event in EVENTS]
    log.write_text("\n".join([*lines[:2], NOT_JSON, *lines[2:]]) + "\n", encoding="utf-8")
    with osmem_server() as url:
        env = Env(base / "var", url, log)
        first = json.loads(env.cli("soc", "ingest", "--format", "json", str(log), "--store", url).stdout)
        again = json.loads(env.cli("soc", "ingest", "--format", "json", str(log), "--store", url).stdout)
        yield env, first, again


def _users(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e["@timestamp"][:16], e["user"]["name"]) for e in events]


def test_ingest_counts_and_idempotent_rerun(ingested: tuple[Env, dict[str, Any], dict[str, Any]]) -> None:
    env, first, again = ingested
    assert (first["read"], first["stored"], first["duplicates"], first["dead_lettered"]) == (5, 4, 0, 1)
    assert (again["read"], again["stored"], again["duplicates"], again["dead_lettered"]) == (5, 0, 4, 1)
    assert not (env.home / "soc" / "events.db").exists(), "events went to the embedded store, not to --store"
    client = es_client(env.url)
    try:
        client.indices.refresh(index="yunshu-events-*")
        counts = {name: client.count(index=name)["count"]
                  for name in sorted(client.indices.get(index="yunshu-events-*").body)}
    finally:
        client.close()
    assert counts == {"yunshu-events-2026.11.20": 2, "yunshu-events-2026.11.21": 1, "yunshu-events-2026.11.22": 1}


def test_search_all_newest_first(ingested: tuple[Env, dict[str, Any], dict[str, Any]]) -> None:
    env = ingested[0]
    events = env.search()
    assert _users(events) == [("2026-11-22T08:00", "bob"), ("2026-11-21T08:00", "root"),
                              ("2026-11-20T09:00", "alice"), ("2026-11-20T08:00", "root")]
    assert all(e["event"]["original"] != NOT_JSON for e in events)


def test_search_honours_where_from_to_and_query(ingested: tuple[Env, dict[str, Any], dict[str, Any]]) -> None:
    env = ingested[0]
    # --where alone: both of root's events
    assert _users(env.search("--where", "user.name=root")) == [("2026-11-21T08:00", "root"),
                                                                 ("2026-11-20T08:00", "root")]
    # --from/--to (end exclusive) narrow them to the first day
    day_one = env.search("--where", "user.name=root", "--from", "2026-11-20T00:00:00Z",
                         "--to", "2026-11-21T08:00:00Z")
    assert _users(day_one) == [("2026-11-20T08:00", "root")]
    assert day_one[0]["message"] == "Failed password for root from 198.18.0.1"
    # --query (full text, every word) with --from in Asia/Shanghai (no zone): 2026-11-21 16:00+08 is 08:00Z
    failed_later = env.search("--query", "failed password", "--from", "2026-11-21T16:00:00")
    assert _users(failed_later) == [("2026-11-22T08:00", "bob"), ("2026-11-21T08:00", "root")]
    # two --where filters together, one a CIDR on an IP field
    assert _users(env.search("--where", "source.ip=198.18.0.0/24", "--where", "event.outcome=failure")) == [
        ("2026-11-22T08:00", "bob"), ("2026-11-20T08:00", "root")]
    assert _users(env.search("--where", "source.ip=2001:db8::/32")) == [("2026-11-21T08:00", "root")]


def test_search_with_an_unknown_field_is_a_clear_error(ingested: tuple[Env, dict[str, Any], dict[str, Any]]) -> None:
    env = ingested[0]
    result = run_cli(env.home, "soc", "search", "--store", env.url, "--where", "no.such.field=1", timeout=180)
    assert result.returncode == 2
    assert "no.such.field" in result.stderr and "Traceback" not in result.stderr
    assert result.stdout == ""


def test_a_store_that_is_down_is_a_clear_error(tmp_path: Path) -> None:
    """Nothing listens on the port: exit code 3 and a message naming the store, no traceback."""
    result = run_cli(tmp_path / "home", "soc", "search", "--store", "http://127.0.0.1:9", "--limit", "1", timeout=180)
    assert result.returncode == 3, result.stderr
    assert "事件存储不可用 / event store unavailable" in result.stderr and "127.0.0.1" in result.stderr
    assert "Traceback" not in result.stderr
