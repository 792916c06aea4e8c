"""Retention: apply_retention per data class, the maintenance loop of the running service and ``yunshu soc retention``.

Events are stored at ages just inside and just past each class's retention (core/settings.py SocSettings); exactly
those past it must go, on both stores.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.runtime import Runtime
from core.settings import SocSettings
from soc.ecs import Event
from soc.metrics import SocMetrics
from soc.service import Soc, SocServices, apply_retention, open_soc
from soc.store.base import SearchQuery
from soc.store.sqlite import SQLiteStore
from tests.conftest import run_cli, sample_home_with_users

NOW = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
DEFAULT_DAYS = {"general": 180, "important": 365, "core": 1095, "unclassified": 180}
NO_CLASS = "unclassified"
# (label, age) around a retention of D days: past it by a day and by a minute, inside it by a minute and a day, and
# exactly D days old (kept: the cut-off is "older than D days")
AGES = {
    "day_past": lambda d: timedelta(days=d + 1),
    "minute_past": lambda d: timedelta(days=d, minutes=1),
    "exactly": lambda d: timedelta(days=d),
    "minute_inside": lambda d: timedelta(days=d) - timedelta(minutes=1),
    "day_inside": lambda d: timedelta(days=d - 1),
}
EXPIRED = {"day_past", "minute_past"}


def _event(at: datetime, data_class: str | None, with_gov: bool = True) -> Event:
    event: Event = {"@timestamp": at.strftime("%Y-%m-%dT%H:%M:%S.000Z"), "message": f"{data_class} event at {at}",
                    "event": {"dataset": "system.auth"}}
    if with_gov:
        event["gov"] = {"department": "GAJ", "system": {"id": "SYS-1"}}
        if data_class is not None:
            event["gov"]["data_class"] = data_class
    return event


def _aged_docs(days: dict[str, int], now: datetime) -> dict[str, Event]:
    """id → event: each class of ``days`` at every age of AGES; unclassified both without ``gov`` and with a
    ``gov`` that has no data class; plus one event of each class from today."""
    docs: dict[str, Event] = {}
    for data_class, d in days.items():
        key = None if data_class == NO_CLASS else data_class
        for label, age in AGES.items():
            docs[f"{data_class}/{label}"] = _event(now - age(d), key)
        docs[f"{data_class}/today"] = _event(now - timedelta(hours=1), key)
    docs[f"{NO_CLASS}/no-gov/day_past"] = _event(now - timedelta(days=days[NO_CLASS] + 1), None, with_gov=False)
    docs[f"{NO_CLASS}/no-gov/day_inside"] = _event(now - timedelta(days=days[NO_CLASS] - 1), None, with_gov=False)
    return docs


def _clear_of_the_boundary(docs: dict[str, Event]) -> dict[str, Event]:
    """Without the ages within a minute of the retention: for runs that take their own "now" (the loop, the CLI)."""
    near = ("/minute_past", "/exactly", "/minute_inside")
    return {doc_id: event for doc_id, event in docs.items() if not doc_id.endswith(near)}


def _expired(doc_id: str) -> bool:
    return doc_id.rsplit("/", 1)[1] in EXPIRED


def _stored_ids(soc: Soc) -> set[str]:
    return {doc_id for doc_id, _ in soc.store.search(SearchQuery(limit=1000)).hits}


@pytest.fixture(params=["sqlite", "elasticsearch"])
def soc(request: pytest.FixtureRequest, sqlite_rt: Runtime) -> Iterator[Soc]:
    """The SOC of a runtime (its embedded store), or the same with a real osmem-server as the store."""
    opened = open_soc(sqlite_rt)
    if request.param == "sqlite":
        yield opened
        opened.close()
        return
    from tests.soc.osmem import es_store, osmem_server

    opened.store.close()
    with osmem_server() as url:
        with_es = dataclasses.replace(opened, store=es_store(url))
        yield with_es
        with_es.close()


def test_default_retention_days_are_the_documented_policy() -> None:
    """网络安全法 第二十一条: at least six months; longer for 重要 and 核心 data."""
    assert SocSettings().retention_days == DEFAULT_DAYS


def test_default_retention_deletes_exactly_the_expired_events(soc: Soc) -> None:
    docs = _aged_docs(DEFAULT_DAYS, NOW)
    assert soc.store.write(list(docs.items())).created == len(docs)
    deleted = apply_retention(soc, SocSettings().retention_days, now=NOW)
    # two expired events per class; unclassified also has the expired one without any gov fields
    assert deleted == {"general": 2, "important": 2, "core": 2, "unclassified": 3}
    kept = {doc_id for doc_id in docs if not _expired(doc_id)}
    assert _stored_ids(soc) == kept
    assert apply_retention(soc, SocSettings().retention_days, now=NOW) == dict.fromkeys(DEFAULT_DAYS, 0)
    # 200 days on, only today's important and core events are still within their retention
    later = apply_retention(soc, SocSettings().retention_days, now=NOW + timedelta(days=200))
    assert later == {"general": 4, "important": 3, "core": 3, "unclassified": 5}
    assert _stored_ids(soc) == {"important/today", "core/today"}


def test_a_class_missing_from_the_mapping_is_never_deleted(soc: Soc) -> None:
    """apply_retention deletes only the classes it is given: the mapping must name all of them."""
    docs = _aged_docs(DEFAULT_DAYS, NOW)
    soc.store.write(list(docs.items()))
    deleted = apply_retention(soc, {"general": 180}, now=NOW)
    assert deleted == {"general": 2}
    assert _stored_ids(soc) == {d for d in docs if d.startswith("general/") and not _expired(d)} | {
        d for d in docs if not d.startswith("general/")}


def test_partial_retention_config_keeps_the_defaults_of_the_other_classes(sqlite_rt: Runtime) -> None:
    """``retention_days: {general: 200}`` in config.yaml must change general only: important, core and
    unclassified events past their default retention are still deleted."""
    settings = SocSettings(retention_days={"general": 200})
    assert settings.retention_days == {**DEFAULT_DAYS, "general": 200}
    soc = open_soc(sqlite_rt)
    try:
        docs = _aged_docs({**DEFAULT_DAYS, "general": 200}, NOW)
        soc.store.write(list(docs.items()))
        deleted = apply_retention(soc, settings.retention_days, now=NOW)
        assert deleted == {"general": 2, "important": 2, "core": 2, "unclassified": 3}
        assert _stored_ids(soc) == {doc_id for doc_id in docs if not _expired(doc_id)}
    finally:
        soc.close()


def test_retention_of_an_unknown_data_class_is_refused() -> None:
    with pytest.raises(ValueError, match=r"unknown data class \['importnat'\]"):
        SocSettings(retention_days={"importnat": 400})


def test_retention_below_six_months_is_refused() -> None:
    with pytest.raises(ValueError, match=r"retention below 180 days.*'important': 90"):
        SocSettings(retention_days={**DEFAULT_DAYS, "important": 90})


def test_the_maintenance_loop_applies_retention(sqlite_rt: Runtime, caplog: pytest.LogCaptureFixture) -> None:
    """SocServices._maintain applies retention on its first round (then every six hours) with the settings."""
    services = SocServices(sqlite_rt, SocMetrics())
    docs = _clear_of_the_boundary(_aged_docs(DEFAULT_DAYS, datetime.now(UTC)))
    assert services.soc.store.write(list(docs.items())).created == len(docs)
    kept = {doc_id for doc_id in docs if not _expired(doc_id)}
    caplog.set_level(logging.INFO, logger="yunshu.soc")
    loop = threading.Thread(target=services._maintain, kwargs={"reload_seconds": 0.05}, daemon=True)
    loop.start()
    try:
        deadline = time.monotonic() + 30
        while _stored_ids(services.soc) != kept and time.monotonic() < deadline:
            time.sleep(0.05)
        while "retention applied" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        services._stop.set()
        loop.join(10)
        services.spool.close()
        services.soc.close()
    assert not loop.is_alive()
    store = SQLiteStore(sqlite_rt.settings.home / "soc" / "events.db")
    try:
        assert {doc_id for doc_id, _ in store.search(SearchQuery(limit=1000)).hits} == kept
    finally:
        store.close()
    applied = [r.getMessage() for r in caplog.records if r.getMessage().startswith("retention applied")]
    assert applied == ["retention applied: {'general': 1, 'important': 1, 'core': 1, 'unclassified': 2}"]
    assert "SOC maintenance failed" not in caplog.text


@pytest.fixture(scope="module")
def pristine_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home with the sample city, made once; each CLI test works on its own copy."""
    home = tmp_path_factory.mktemp("retention") / "var"
    sample_home_with_users(home, [])
    return home


@pytest.fixture
def home(pristine_home: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(pristine_home, tmp_path / "var"))


def _store_aged(home: Path, days: dict[str, int]) -> dict[str, Event]:
    """Aged events (relative to now) in the home's embedded store."""
    docs = _clear_of_the_boundary(_aged_docs(days, datetime.now(UTC)))
    store = SQLiteStore(home / "soc" / "events.db")
    try:
        assert store.write(list(docs.items())).created == len(docs)
    finally:
        store.close()
    return docs


def _home_ids(home: Path) -> set[str]:
    store = SQLiteStore(home / "soc" / "events.db")
    try:
        return {doc_id for doc_id, _ in store.search(SearchQuery(limit=1000)).hits}
    finally:
        store.close()


def test_cli_retention_deletes_expired_events(home: Path) -> None:
    docs = _store_aged(home, DEFAULT_DAYS)
    done = run_cli(home, "soc", "retention")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"deleted": {"general": 1, "important": 1, "core": 1, "unclassified": 2},
                                       "retention_days": DEFAULT_DAYS}
    assert _home_ids(home) == {doc_id for doc_id in docs if not _expired(doc_id)}
    again = run_cli(home, "soc", "retention")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["deleted"] == dict.fromkeys(DEFAULT_DAYS, 0)


def test_cli_retention_follows_the_config_file_and_the_store_option(home: Path, tmp_path: Path) -> None:
    longer = {"general": 400, "important": 800, "core": 2000, "unclassified": 365}
    lines = "".join(f"    {k}: {v}\n" for k, v in longer.items())
    (home / "config.yaml").write_text(f"soc:\n  retention_days:\n{lines}")
    other = tmp_path / "other.db"
    store = SQLiteStore(other)
    try:  # expired by the defaults, not by the configured days
        docs = {f"{k}/d{d}": _event(datetime.now(UTC) - timedelta(days=d), None if k == NO_CLASS else k)
                for k, d in (("general", 300), ("general", 401), ("important", 700), ("core", 1500), (NO_CLASS, 366))}
        store.write(list(docs.items()))
    finally:
        store.close()
    done = run_cli(home, "soc", "retention", "--store", f"sqlite:///{other}")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"deleted": {"general": 1, "important": 0, "core": 0, "unclassified": 1},
                                       "retention_days": longer}
    store = SQLiteStore(other)
    try:
        assert {i for i, _ in store.search(SearchQuery()).hits} == {"general/d300", "important/d700", "core/d1500"}
    finally:
        store.close()


def test_cli_retention_refuses_a_retention_below_six_months(home: Path) -> None:
    docs = _store_aged(home, DEFAULT_DAYS)
    (home / "config.yaml").write_text("soc:\n  retention_days:\n    general: 30\n")
    done = run_cli(home, "soc", "retention")
    assert done.returncode == 2 and "configuration error" in done.stderr
    assert "retention below 180 days" in done.stderr and "'general': 30" in done.stderr
    assert _home_ids(home) == set(docs)  # nothing deleted
