"""SQLite files in WAL mode, as the embedded stores (events, their text index, dead letters) open them."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def open_wal_database(path: Path, schema: str, page_size: int | None = None) -> sqlite3.Connection:
    """A SQLite file in WAL mode with its schema, shareable between threads (callers hold a lock). ``page_size``
    applies to a new file only (an existing one keeps its own)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
    if page_size:
        db.execute(f"PRAGMA page_size={int(page_size)}")
    db.execute("PRAGMA journal_mode=WAL")
    # FULL: a commit is on disk when it returns (NORMAL could lose the last ones to a power cut), for the spool's
    # checkpoint moves past the records of a batch, and drops their segment, as soon as it is stored
    db.execute("PRAGMA synchronous=FULL")
    db.executescript(schema)
    return db


@contextmanager
def immediate(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction (``BEGIN IMMEDIATE``), committed when the block ends, rolled back when it raises (unless
    SQLite rolled back already, so that the first error is the one raised and no transaction is left open)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
