"""The embedded store's full-text index over text blocks, in a file of its own kept up by a thread of its own: one
block per indexing pass (at most BLOCK_ROWS rowids), candidates checked against the stored message, rows the index
has not reached found directly, blocks dropped with their last row, and older stores' in-file indexes rebuilt."""

from __future__ import annotations

import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from soc.ecs import Event
from soc.store.base import SearchQuery
from soc.store.side_index import SideIndex, index_path
from soc.store.sqlite import SQLiteStore
from soc.store.text_index import text_path
from soc.store.wal import open_wal_database

NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def _event(message: str | None, at: datetime = NOW, data_class: str = "一般数据") -> Event:
    event: Event = {"@timestamp": at.isoformat(), "event": {"dataset": "test"}, "gov": {"data_class": data_class}}
    if message is not None:
        event["message"] = message
    return event


def _ids(store: SQLiteStore, text: str) -> set[str]:
    return {doc_id for doc_id, _ in store.search(SearchQuery(text=text, limit=1000)).hits}


def _blocks(path: Path) -> list[tuple[int, int]]:
    with sqlite3.connect(index_path(path)) as db:
        return db.execute("SELECT first_rowid, last_rowid FROM text_blocks ORDER BY id").fetchall()


def _upto(path: Path) -> int:
    with sqlite3.connect(index_path(path)) as db:
        return db.execute("SELECT upto FROM index_state").fetchone()[0]


def _write(store: SQLiteStore, docs: list[tuple[str, Event]]) -> None:
    """Write, then wait for the text index: each write is then exactly one indexing pass."""
    store.write(docs)
    store.wait_indexed()


def _wait_for_upto(path: Path, rowid: int) -> None:
    """Until the index's thread (not this one) has indexed up to ``rowid`` (30 s at most)."""
    deadline = time.monotonic() + 30
    while _upto(path) < rowid and time.monotonic() < deadline:
        time.sleep(0.01)


def test_the_side_index_is_a_file_beside_the_events() -> None:
    assert index_path(Path("/var/soc/events.db")) == Path("/var/soc/events.index.db")
    assert index_path(Path("/var/soc/events")) == Path("/var/soc/events.index.db")
    assert text_path(Path("/var/soc/events.db")) == Path("/var/soc/events.text.db")  # the file of 2026-12-03


def test_each_batch_is_one_block_and_search_finds_exactly_the_matching_rows(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "events.db")
    _write(store, [("a1", _event("Failed password for root from 10.0.0.1")),
                   ("a2", _event("Accepted password for alice")), ("a3", _event(None)),
                   ("a4", _event("Failed password for root from 10.0.0.1"))])  # a message repeated in the batch
    _write(store, [("b1", _event("GET /index.php?id=1' OR '1'='1 数据库")), ("b2", _event("Failed password for bob"))])
    store.close()
    assert _blocks(tmp_path / "events.db") == [(1, 4), (5, 6)]
    store = SQLiteStore(tmp_path / "events.db")
    assert _ids(store, "Failed password") == {"a1", "a4", "b2"}
    assert _ids(store, "for root") == {"a1", "a4"}
    assert _ids(store, "数据库") == {"b1"}
    assert _ids(store, "alice") == {"a2"}
    assert _ids(store, "nowhere to be found") == set()
    store.close()


def test_texts_with_glob_wildcards_and_like_wildcards_are_found_literally(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "events.db")
    _write(store, [("ufw", _event("[UFW BLOCK] IN=eth0 SRC=10.0.0.9")), ("ufwa", _event("UFW BLOCK IN=eth0")),
                   ("star", _event("rm -rf /tmp/*?x")), ("like", _event("100% of user_a")),
                   ("plain", _event("100 of userXa"))])
    assert _ids(store, "[UFW BLOCK]") == {"ufw"}
    assert _ids(store, "[ufw") == {"ufw"}
    assert _ids(store, "/tmp/*?x") == {"star"}
    assert _ids(store, "100% of user_a") == {"like"}
    assert _ids(store, "user_a") == {"like"}
    store.close()


def test_a_write_of_more_rows_than_a_block_spans_makes_several_blocks(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("soc.store.text_index.BLOCK_ROWS", 4)
    store = SQLiteStore(tmp_path / "events.db")
    _write(store, [(f"e{i}", _event(f"message number {i:02d}")) for i in range(1, 11)])
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
    _write(store, docs)
    assert store.write(docs).duplicates == 1
    store.wait_indexed()
    assert _blocks(tmp_path / "events.db") == [(1, 1)]
    assert _ids(store, "COMMAND=/bin/sh") == {"a1"}
    store.close()


def test_retention_drops_a_block_with_its_last_row_and_rowids_are_never_reused(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "events.db")
    old, new = NOW - timedelta(days=400), NOW
    _write(store, [("keep", _event("kept message alpha", new)), ("gone", _event("expired message beta", old))])
    _write(store, [("gone2", _event("expired message gamma", old))])
    assert store.delete_before(NOW - timedelta(days=180), "一般数据") == 2
    assert _blocks(tmp_path / "events.db") == [(1, 2)]  # the second block's only row is gone, and so is the block
    assert _ids(store, "expired message") == set()  # the first block still names "beta": the check drops it
    # rowids 2 and 3 are free, but the next write goes past every rowid ever held: the index's mark stays true
    store.write([("late", _event("late message delta", new))])
    assert store._db.execute("SELECT rowid FROM events WHERE id = 'late'").fetchone()[0] == 4
    assert _ids(store, "message") == {"keep", "late"}
    assert _ids(store, "delta") == {"late"}
    store.wait_indexed()
    assert _blocks(tmp_path / "events.db") == [(1, 2), (4, 4)]
    assert store.delete_before(NOW + timedelta(days=1), "一般数据") == 2
    assert _blocks(tmp_path / "events.db") == []
    store.close()
    store = SQLiteStore(tmp_path / "events.db")  # the mark outlives the rows and the connection
    store.write([("after", _event("after everything", new))])
    assert store._db.execute("SELECT rowid FROM events WHERE id = 'after'").fetchone()[0] == 5
    assert _ids(store, "everything") == {"after"}
    store.close()


def test_rows_the_index_has_not_reached_are_found_and_a_store_opened_later_indexes_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "events.db"
    monkeypatch.setattr(SideIndex, "notify", lambda self, rows=1: None)  # as when the index's thread lags far behind
    store = SQLiteStore(path)
    _write(store, [("a", _event("first batch of words"))])
    store.write([("b", _event("second batch of words")), ("c", _event("third one"))])  # not indexed
    assert _upto(path) == 1 and _blocks(path) == [(1, 1)]
    assert store.text_index_lag() == 2
    assert _ids(store, "batch of") == {"a", "b"}
    assert _ids(store, "third") == {"c"}
    store.close()
    monkeypatch.undo()
    store = SQLiteStore(path)  # a store opened on rows its index has not reached wakes the index itself
    _wait_for_upto(path, 3)
    assert _upto(path) == 3 and _blocks(path) == [(1, 1), (2, 3)]
    assert _ids(store, "batch of") == {"a", "b"}
    store.close()


def test_the_thread_indexes_writes_by_itself(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    store = SQLiteStore(path)
    store.write([("a", _event("written and left alone"))])
    _wait_for_upto(path, 1)
    assert _blocks(path) == [(1, 1)]
    store.close()


def test_an_index_beside_an_events_file_made_anew_starts_over(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    store = SQLiteStore(path)
    _write(store, [(f"old{i}", _event(f"old message {i}")) for i in range(5)])
    store.close()
    for leftover in (path, path.with_name("events.db-wal"), path.with_name("events.db-shm")):
        leftover.unlink(missing_ok=True)  # the events are gone; their text index stays behind
    store = SQLiteStore(path)
    assert _blocks(path) == [] and _upto(path) == 0
    _write(store, [("new", _event("new message"))])
    assert _ids(store, "message") == {"new"}
    store.close()


_PER_ROW_FTS = """
CREATE VIRTUAL TABLE events_fts USING fts5(message, content='events', content_rowid='rowid',
    tokenize='trigram', detail=none, columnsize=0);
CREATE TRIGGER events_ad AFTER DELETE ON events BEGIN
    INSERT INTO events_fts(events_fts, rowid, message) VALUES ('delete', old.rowid, old.message);
END;
"""


_IN_FILE_BLOCKS = """
CREATE TABLE text_blocks (id INTEGER PRIMARY KEY, first_rowid INTEGER NOT NULL, last_rowid INTEGER NOT NULL,
    body TEXT NOT NULL);
CREATE VIRTUAL TABLE text_blocks_fts USING fts5(body, content='text_blocks', content_rowid='id',
    tokenize='trigram', detail=none, columnsize=0);
CREATE TRIGGER text_blocks_ad AFTER DELETE ON text_blocks BEGIN
    INSERT INTO text_blocks_fts(text_blocks_fts, rowid, body) VALUES ('delete', old.id, old.body);
END;
INSERT INTO text_blocks(first_rowid, last_rowid, body) SELECT min(rowid), max(rowid), group_concat(message)
    FROM events;
INSERT INTO text_blocks_fts(text_blocks_fts) VALUES ('rebuild');
"""


@pytest.mark.parametrize("old_index", [_PER_ROW_FTS + "INSERT INTO events_fts(events_fts) VALUES ('rebuild');",
                                       _IN_FILE_BLOCKS], ids=["per-row FTS5", "text blocks in the events file"])
def test_an_older_stores_text_index_is_dropped_and_rebuilt_in_its_own_file(tmp_path: Path, old_index: str) -> None:
    path = tmp_path / "events.db"
    store = SQLiteStore(path)
    store.write([(f"e{i}", _event(f"Line {i} from HOST-{i % 3}")) for i in range(5)])
    store.close()
    for leftover in (index_path(path), index_path(path).with_name("events.index.db-wal")):
        leftover.unlink(missing_ok=True)
    db = open_wal_database(path, old_index)  # as a store written before the text index had its own file
    db.close()
    store = SQLiteStore(path)
    names = {name for (name,) in sqlite3.connect(path).execute("SELECT name FROM sqlite_master")}
    assert not names & {"events_fts", "events_ad", "text_blocks", "text_blocks_fts", "text_blocks_ad"}
    assert _ids(store, "host-1") == {"e1", "e4"}  # before the index caught up: the rows are checked directly
    store.wait_indexed()
    assert _blocks(path) == [(1, 5)]
    with sqlite3.connect(index_path(path)) as db:
        assert db.execute("SELECT body FROM text_blocks").fetchone()[0].startswith("line 0 from host-0")
    assert _ids(store, "HOST-1") == {"e1", "e4"}
    store.write([("e5", _event("line 5 from host-1"))])  # writing and deleting go on as in any store
    assert _ids(store, "host-1") == {"e1", "e4", "e5"}
    assert store.delete_before(NOW + timedelta(days=1), "一般数据") == 6
    store.close()
    assert _blocks(path) == []


def test_two_stores_on_one_file_writing_at_once_index_every_row_once(tmp_path: Path) -> None:
    import threading

    path = tmp_path / "events.db"
    stores = [SQLiteStore(path), SQLiteStore(path)]  # as the service and a CLI import in two processes

    def write(n: int) -> None:
        for batch in range(20):
            stores[n].write([(f"s{n}-{batch}-{i}", _event(f"writer {n} batch {batch} row {i}")) for i in range(5)])

    threads = [threading.Thread(target=write, args=(n,)) for n in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for store in stores:
        store.wait_indexed()
    blocks = _blocks(path)
    covered = [rowid for first, last in blocks for rowid in range(first, last + 1)]
    assert len(covered) == len(set(covered)) and set(covered) == set(range(1, 201))  # no row twice, none left out
    assert _upto(path) == 200
    assert _ids(stores[1], "writer 0 batch 7 ") == {f"s0-7-{i}" for i in range(5)}
    for store in stores:
        store.close()


def test_a_closing_store_stops_its_index_after_the_pass_in_progress(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("soc.store.side_index.PASS_ROWS", 2)
    monkeypatch.setattr(SideIndex, "notify", lambda self, rows=1: None)
    path = tmp_path / "events.db"
    store = SQLiteStore(path)
    store.write([(f"e{i}", _event(f"row {i}")) for i in range(7)])
    store._side._stopping = True  # as close() sets it while a large backlog is being indexed
    assert store._side.catch_up() == 2  # one pass of PASS_ROWS rowids, then it gives way
    store._side._stopping = False
    assert store._side.catch_up() == 7  # otherwise every pass until the index is level with the rows
    assert _blocks(path) == [(1, 2), (3, 4), (5, 6), (7, 7)]
    store.close()


def test_query_words_are_the_longer_runs_between_glob_specials() -> None:
    from soc.store.text_index import query_words
    from soc.store.text_words import block_words

    assert query_words("Failed  password\tfor ab") == ["*password*", "*failed*", "*for*"]
    assert query_words("[UFW BLOCK] a*b?c 用户*数据库?x") == ["*block]*", "*ufw*", "*数据库*"]
    assert query_words("bX?据9") == []  # runs of two characters (据9 is four bytes): not looked up
    assert query_words("a b") == []  # nothing as long as a trigram: rows are checked one by one
    assert len(query_words("one two three four five six")) == 4
    assert block_words("Failed password for root\nFailed password for bob\u3000数据库") == \
        "failed password for root bob 数据库"


def test_every_substring_of_a_message_finds_exactly_the_messages_holding_it(tmp_path: Path) -> None:
    """Random messages (words of Latin, Chinese, digits, GLOB and LIKE specials, several kinds of whitespace) and
    random slices of them as searched texts: the index's candidates never drop a row the exact check keeps."""
    import random

    rng = random.Random(20261203)
    alphabet = "abcXYZ019数据库用户[]*?%_.:/-=\\"
    spaces = [" ", "  ", "\t", "\u3000"]

    def word() -> str:
        return "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 8)))

    messages = ["".join(word() + rng.choice(spaces) for _ in range(rng.randint(1, 8))).strip() for _ in range(300)]
    store = SQLiteStore(tmp_path / "events.db")
    for at in range(0, 300, 100):
        _write(store, [(f"m{i}", _event(messages[i])) for i in range(at, at + 100)])
    assert _upto(tmp_path / "events.db") == 300  # every row through the index: no row is checked for lagging
    texts = []
    for _ in range(300):
        message = rng.choice(messages)
        start = rng.randrange(len(message))
        texts.append(message[start:start + rng.randint(1, 20)])
    for text in texts + [word() for _ in range(50)]:
        if not text.strip():
            continue
        wanted = text.strip().lower()
        expected = {f"m{i}" for i, message in enumerate(messages) if wanted in message.lower()}
        assert _ids(store, text) == expected, text
    store.close()


@pytest.mark.parametrize("departments", [None, {"GAJ", "SJJ"}], ids=["all", "in departments"])
def test_a_text_search_is_driven_by_its_candidate_rows_not_by_a_walk_of_the_time_index(
        tmp_path: Path, departments: set[str] | None) -> None:
    """The newest page of a text search looks up the candidate rows (and those past the index) by rowid and sorts
    them: walking every event in time order (or every event of the departments) to test each would make a rare text
    cost the whole store."""
    store = SQLiteStore(tmp_path / "events.db")
    where, params = store._where(SearchQuery(text="Failed password", departments=departments))
    plan = [row[3] for row in store._reader.execute(
        f"EXPLAIN QUERY PLAN SELECT e.id, e.doc FROM events e{where} ORDER BY e.ts DESC, e.rowid DESC LIMIT 10",
        params)]
    assert plan[0] == "SEARCH e USING INTEGER PRIMARY KEY (rowid=?)", plan
    assert not any(step.startswith("SCAN e") for step in plan), plan
    store.close()
