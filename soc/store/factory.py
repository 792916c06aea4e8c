"""Open an event store from a URL: ``sqlite:///path``, a path, or ``http(s)://`` for Elasticsearch."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from soc.store.base import EventStore, StoreConfigError


def default_store_path(home: Path) -> Path:
    return home / "soc" / "events.db"


def open_store(url: str | None, home: Path, retention_days: Mapping[str, int] | None = None,
               must_exist: bool = False) -> EventStore:
    """The store named by ``url`` (None: the embedded store under ``home``).

    ``must_exist``: a ``sqlite:///`` store named by the URL must be there already (reading commands: a mistyped
    path is an error, not a new empty store); StoreConfigError otherwise, as for an unknown URL.

    ``retention_days``: the per-data-class retention (``soc.retention_days``; None: its defaults). An
    Elasticsearch store's lifecycle policy drops whole daily indices, which mix data classes, so it keeps them
    for the longest of these; shorter classes are deleted per class by ``delete_before``.
    """
    if not url:
        from soc.store.sqlite import SQLiteStore

        return SQLiteStore(default_store_path(home))
    if url.startswith(("http://", "https://")):
        from soc.store.elasticsearch import ElasticsearchStore, longest_retention

        return ElasticsearchStore(url, retention_days=longest_retention(retention_days))
    if url.startswith("sqlite:///"):
        from soc.store.sqlite import SQLiteStore

        path = Path(url.removeprefix("sqlite:///"))
        if must_exist and not path.is_file():
            raise StoreConfigError(f"no embedded event store at {path} (from {url})")
        return SQLiteStore(path)
    raise StoreConfigError(f"unknown store URL '{url}': use sqlite:///PATH or http(s)://HOST:PORT")
