"""Dead letters: input that could not be parsed, was too large or was refused, kept with its reason and bytes."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from soc.store.wal import immediate, open_wal_database

SCHEMA = """
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY,
    received_at TEXT NOT NULL,
    source TEXT NOT NULL,
    reason TEXT NOT NULL,
    raw BLOB NOT NULL,
    UNIQUE (source, raw)
);
"""


@dataclass(frozen=True)
class DeadLetter:
    id: int
    received_at: str
    source: str
    reason: str
    raw: bytes


class DeadLetterStore:
    """A small SQLite file beside the event store; the same (source, raw) is kept once."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._db = open_wal_database(self.path, SCHEMA)

    def add_many(self, items: list[tuple[str, str, bytes]]) -> int:
        """Keep (source, reason, raw) records; returns how many were new."""
        if not items:
            return 0
        now = datetime.now(UTC).isoformat()
        with self._lock:
            before = self._db.total_changes
            with immediate(self._db):  # disk full, a blob too big: the next call must find no transaction open
                self._db.executemany(
                    "INSERT OR IGNORE INTO dead_letters(received_at, source, reason, raw) VALUES (?, ?, ?, ?)",
                    [(now, src, reason, raw) for src, reason, raw in items],
                )
            return self._db.total_changes - before

    def count(self) -> int:
        with self._lock:
            return self._db.execute("SELECT count(*) FROM dead_letters").fetchone()[0]

    def latest(self, limit: int = 50) -> list[DeadLetter]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, received_at, source, reason, raw FROM dead_letters ORDER BY id DESC LIMIT ?", (limit,)
            ).fetchall()
        return [DeadLetter(*row) for row in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()
