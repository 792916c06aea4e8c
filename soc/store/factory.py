"""Open an event store from a URL: ``sqlite:///path``, a path, or ``http(s)://`` for Elasticsearch."""

from __future__ import annotations

from pathlib import Path

from soc.store.base import EventStore


def default_store_path(home: Path) -> Path:
    return home / "soc" / "events.db"


def open_store(url: str | None, home: Path) -> EventStore:
    """The store named by ``url`` (None: the embedded store under ``home``)."""
    if not url:
        from soc.store.sqlite import SQLiteStore

        return SQLiteStore(default_store_path(home))
    if url.startswith(("http://", "https://")):
        from soc.store.elasticsearch import ElasticsearchStore

        return ElasticsearchStore(url)
    if url.startswith("sqlite:///"):
        from soc.store.sqlite import SQLiteStore

        return SQLiteStore(Path(url.removeprefix("sqlite:///")))
    raise ValueError(f"unknown store URL '{url}': use sqlite:///PATH or http(s)://HOST:PORT")
