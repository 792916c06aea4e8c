"""The dead-letter store after a failed write."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from soc.deadletter import DeadLetterStore


def test_a_failed_write_leaves_the_store_usable(tmp_path: Path) -> None:
    """A write the database refuses (here a trigger; in life a full disk or a blob too big) raises and keeps
    nothing of its batch, and the next write goes through (no transaction is left open)."""
    store = DeadLetterStore(tmp_path / "dead.db")
    store._db.execute("CREATE TRIGGER refuse BEFORE INSERT ON dead_letters WHEN new.source = 'poison' "
                      "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END")
    with pytest.raises(sqlite3.DatabaseError, match="refused by the test"):
        store.add_many([("first", "bad line", b"x"), ("poison", "bad line", b"y")])
    assert store.count() == 0
    assert store.add_many([("second", "bad line", b"z")]) == 1
    assert [d.source for d in store.latest()] == ["second"]
    store.close()
