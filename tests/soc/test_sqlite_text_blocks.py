"""The embedded store's full-text index over text blocks: one block per written batch, candidates checked against
the stored message, blocks dropped with their last row, and stores with the older per-row index migrated."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from soc.ecs import Event
from soc.store.base import SearchQuery
from soc.store.sqlite import SCHEMA, SQLiteStore, open_wal_database

NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def _event(message: str | None, at: datetime = NOW, data_class: str = "一般数据") -> Event:
    event: Event = {"@timestamp": at.isoformat(), "event": {"dataset": "test"}, "gov": {"data_class": data_class}}
    if message is not None:
        event["message"] = message
    return event


def _ids(store: SQLiteStore, text: str) -> set[str]:
    return {doc_id for doc_id, _ in store.search(SearchQuery(text=text, limit=100)).hits}


def _blocks(path: Path) -> list[tuple[int, int]]:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT first_rowid, last_rowid FROM text_blocks ORDER BY id").fetchall()


def test_each_batch_is_one_block_and_search_finds_exactly_the_matching_rows(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "events.db")
    store.write([("a1", _event("Failed password for root from 10.0.0.1")),
                 ("a2", _event("Accepted password for alice")), ("a3", _event(None)),
                 ("a4", _event("Failed password for root from 10.0.0.1"))])  # a message repeated in the batch
    store.write([("b1", _event("GET /index.php?id=1' OR '1'='1 数据库")), ("b2", _event("Failed password for bob"))])
    store.close()
    assert _blocks(tmp_path / "events.db") == [(1, 4), (5, 6)]
    store = SQLiteStore(tmp_path / "events.db")
    assert _ids(store, "Failed password") == {"a1", "a4", "b2"}
    assert _ids(store, "for root") == {"a1", "a4"}
    assert _ids(store, "数据库") == {"b1"}
    assert _ids(store, "alice") == {"a2"}
    assert _ids(store, "nowhere to be found") == set()
    store.close()


def test_a_write_of_more_rows_than_a_block_spans_makes_several_blocks(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("soc.store.sqlite.BLOCK_ROWS", 4)
    store = SQLiteStore(tmp_path / "events.db")
    store.write([(f"e{i}", _event(f"message number {i:02d}")) for i in range(1, 11)])
    assert _blocks(tmp_path / "events.db") == [(1, 3), (4, 7), (8, 10)]  # rowid // 4 groups
    assert _ids(store, "number 0") == {f"e{i}" for i in range(1, 10)}
    assert _ids(store, "number 10") == {"e10"}
    store.close()


def test_a_new_store_has_16_kib_pages(tmp_path: Path) -> None:
    SQLiteStore(tmp_path / "events.db").close()
    assert sqlite3.connect(tmp_path / "events.db").execute("PRAGMA page_size").fetchone()[0] == 16384


def test_a_duplicate_write_adds_no_block_and_search_stays_exact(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "events.db")
    docs = [("a1", _event("sudo: alice : COMMAND=/bin/sh"))]
    store.write(docs)
    assert store.write(docs).duplicates == 1
    assert _blocks(tmp_path / "events.db") == [(1, 1)]
    assert _ids(store, "COMMAND=/bin/sh") == {"a1"}
    store.close()


def test_retention_drops_a_block_with_its_last_row_and_reused_rowids_stay_searchable(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "events.db")
    old, new = NOW - timedelta(days=400), NOW
    store.write([("keep", _event("kept message alpha", new)), ("gone", _event("expired message beta", old))])
    store.write([("gone2", _event("expired message gamma", old))])
    assert store.delete_before(NOW - timedelta(days=180), "一般数据") == 2
    assert _blocks(tmp_path / "events.db") == [(1, 2)]  # the second block's only row is gone, and so is the block
    assert _ids(store, "expired message") == set()  # the first block still names "beta": the check drops it
    # rowid 2 is free again: the next write reuses it, and its own block makes it searchable
    store.write([("late", _event("late message delta", new))])
    assert _ids(store, "message") == {"keep", "late"}
    assert _ids(store, "delta") == {"late"}
    assert store.delete_before(NOW + timedelta(days=1), "一般数据") == 2
    assert _blocks(tmp_path / "events.db") == []
    store.close()


_PER_ROW_FTS = """
CREATE VIRTUAL TABLE events_fts USING fts5(message, content='events', content_rowid='rowid',
    tokenize='trigram', detail=none, columnsize=0);
CREATE TRIGGER events_ad AFTER DELETE ON events BEGIN
    INSERT INTO events_fts(events_fts, rowid, message) VALUES ('delete', old.rowid, old.message);
END;
"""


def test_a_store_with_the_per_row_index_is_migrated_to_text_blocks(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    store = SQLiteStore(path)
    store.write([(f"e{i}", _event(f"line {i} from host-{i % 3}")) for i in range(5)])
    store.close()
    # make it look as a store written before text blocks: no blocks, a per-row FTS5 index and its trigger
    db = open_wal_database(path, SCHEMA)
    db.executescript("DROP TRIGGER text_blocks_ad; DROP TABLE text_blocks_fts; DROP TABLE text_blocks;" + _PER_ROW_FTS
                     + "INSERT INTO events_fts(events_fts) VALUES ('rebuild');")
    db.close()
    store = SQLiteStore(path)
    names = {name for (name,) in sqlite3.connect(path).execute("SELECT name FROM sqlite_master")}
    assert "events_fts" not in names and "events_ad" not in names
    assert _blocks(path) == [(1, 5)]
    assert _ids(store, "host-1") == {"e1", "e4"}
    store.write([("e5", _event("line 5 from host-1"))])  # writing and deleting go on as in any store
    assert _ids(store, "host-1") == {"e1", "e4", "e5"}
    assert store.delete_before(NOW + timedelta(days=1), "一般数据") == 6
    store.close()
    assert _blocks(path) == []


def test_blocks_written_before_lowercasing_are_found_as_typed(tmp_path: Path) -> None:
    """Text blocks are lowercased as written (2026-12-02); a block of an older store kept its case and is still
    found by a text typed in that case."""
    store = SQLiteStore(tmp_path / "events.db")
    store.write([("a", {"@timestamp": "2026-11-20T08:00:00.000Z", "message": "ÉCOLE ouverte"})])
    assert store._db.execute("SELECT body FROM text_blocks").fetchone()[0] == "école ouverte"
    store._db.execute("UPDATE text_blocks SET body = 'ÉCOLE ouverte'")  # as an older store wrote it
    store._db.execute("INSERT INTO text_blocks_fts(text_blocks_fts) VALUES ('rebuild')")
    assert [doc_id for doc_id, _ in store.search(SearchQuery(text="ÉCOLE")).hits] == ["a"]
    store.close()
