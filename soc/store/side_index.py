"""The embedded store's side index: a SQLite file beside the events (``events.db`` → ``events.index.db``), kept up
by a thread of its own, holding what would make every insert costly in the events file: the full text
(:mod:`soc.store.text_index`) and the key tables of the many-valued hot columns (:mod:`soc.store.key_index`).

Why a file and a thread of its own: the text and those four indexes cost more than inserting the rows themselves (about
4 µs a row for the text blocks and 10 µs for the indexes inline, against 10 µs for the table with its few-valued
indexes, a million corpus rows). In the events file they ran inside every write transaction, on the writer's thread;
here a pass indexes up to PASS_ROWS rows at once (the keys into their latest buckets, about 1 µs a row and table),
beside the writes, on the other CPU, since SQLite locks each file apart. A write transaction locks every file its
connection may write: the writer's connection never attaches the index, and the index's connection attaches the events
file read-only (``attach_read_only``).

``index_state.upto`` is the last rowid indexed: a query checks the rows after it directly, so the index lagging the
writes (or a store opened before it caught up) never hides a row. Rowids are never reused (the store hands them out
from a high-water mark), so every row after ``upto`` is one the index has not seen. ``index_state.store`` names the
events file the index belongs to (a random id kept in that file) and ``format`` the layout of the index: an index
built for another events file, or in another layout, starts over.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from pathlib import Path

from soc.store.key_index import KEY_TABLES, KEYED, add_keys_sql, drop_deleted_keys_sql
from soc.store.text_index import TEXT_DROPS, TEXT_TABLES, add_text_blocks, drop_empty_blocks
from soc.store.text_words import block_words
from soc.store.wal import immediate, open_wal_database

log = logging.getLogger("yunshu.soc.store")

FORMAT = 2  # the layout of the side index's tables; another starts the index over (2: key buckets)
_TABLES = (*TEXT_TABLES, *KEY_TABLES)
_DROPS = (*TEXT_DROPS, *(f"DROP TABLE IF EXISTS keys_{column}" for column in KEYED))
INDEX_SCHEMA = """CREATE TABLE IF NOT EXISTS index_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    store TEXT NOT NULL,
    format INTEGER NOT NULL,
    upto INTEGER NOT NULL
);
"""
PASS_ROWS = 200_000  # rowids one indexing transaction covers at most (a large backlog goes in several)
# A pass waits for this many rows written, or this long after the first write it was woken for: small passes cost
# more a row (a million corpus rows, CPU a row: 17 µs in passes of 5,000 rows, 10 of 20,000, 7-8 of 200,000), and
# the rows a pass has not reached yet are only checked directly by a query meanwhile.
GATHER_ROWS = 50_000
GATHER_SECONDS = 1.0
_ADD_KEYS = tuple(add_keys_sql(column) for column in KEYED)
_DROP_DELETED_KEYS = tuple(drop_deleted_keys_sql(column) for column in KEYED)


def attach_read_only(db: sqlite3.Connection, path: Path, schema: str) -> None:
    """Attach ``path`` as ``schema``, read-only. ``BEGIN IMMEDIATE`` starts a write transaction on every database a
    connection has attached that it may write: with the events file attached for writing, each pass of the side
    index held the events file's write lock until it committed, and the writer waited out the pass (measured: a
    writer's ``BEGIN IMMEDIATE`` failing as locked while the index's transaction was open)."""
    db.execute(f"ATTACH DATABASE ? AS {schema}", (f"{path.resolve().as_uri()}?mode=ro",))
    attached = {name: file for _, name, file in db.execute("PRAGMA database_list")}
    if attached.get(schema) != str(path.resolve()):  # (a SQLite built without URI file names took it as a name)
        raise RuntimeError(f"SQLite did not attach {path} read-only (attached: {attached.get(schema)!r}); it needs "
                           "URI file names (SQLITE_USE_URI)")


def index_path(events_path: Path) -> Path:
    """The side index's file beside an events file (``events.db`` → ``events.index.db``)."""
    return events_path.with_name(f"{events_path.stem}.index{events_path.suffix or '.db'}")


class SideIndex:
    """The side index of one events file; ``notify`` after a write wakes its thread, which indexes every row
    written since its last pass. Safe to share between threads; several processes may keep the same index (each
    pass reads ``upto`` inside its own write transaction)."""

    def __init__(self, events_path: Path, store_id: str):
        self.path = index_path(events_path)
        self._db = open_wal_database(self.path, INDEX_SCHEMA)
        self._db.execute("PRAGMA cache_size=-65536")  # the key tables' pages a pass writes
        self._db.create_function("yunshu_block_words", 1, block_words, deterministic=True)
        attach_read_only(self._db, events_path, "ev")
        self._lock = threading.Lock()  # the connection
        self._wake = threading.Event()
        self._written = 0  # rows written since the thread last took stock (a count for gathering, not exact)
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._adopt(store_id)

    def _adopt(self, store_id: str) -> None:
        """Start over when the index was built for another events file or in another layout (or never): in one
        transaction, so that another process opening the same files at the same time sees the old index or the
        new one."""
        with self._lock:
            if self._built_for() == (store_id, FORMAT):
                return
            with immediate(self._db) as db:
                if self._built_for() != (store_id, FORMAT):  # (unless another process adopted it meanwhile)
                    for statement in (*_DROPS, *_TABLES):
                        db.execute(statement)
                    db.execute("DELETE FROM index_state")
                    db.execute("INSERT INTO index_state(id, store, format, upto) VALUES (1, ?, ?, 0)",
                               (store_id, FORMAT))

    def _built_for(self) -> tuple[str, int] | None:
        row = self._db.execute("SELECT store, format FROM index_state").fetchone()
        return None if row is None else (row[0], row[1])

    def catch_up(self) -> int:
        """Index every row written so far (in transactions of at most PASS_ROWS rowids); returns the last rowid
        indexed."""
        while True:
            with self._lock, immediate(self._db) as db:
                upto = db.execute("SELECT upto FROM index_state").fetchone()[0]
                top = db.execute("SELECT coalesce(max(rowid), 0) FROM ev.events").fetchone()[0]
                end = min(top, upto + PASS_ROWS)
                if end > upto:
                    add_text_blocks(db, upto, end)
                    for statement in _ADD_KEYS:
                        db.execute(statement, (upto, end))
                    db.execute("UPDATE index_state SET upto = ?", (end,))
            if end >= top or self._stopping:  # (closing: the rest is for the next store opened on the file)
                return max(end, upto)

    def drop_deleted(self, before_ms: int) -> None:
        """Drop the text blocks none of whose rows is left, and the keys of deleted rows older than ``before_ms``
        (after deleting events)."""
        with self._lock, immediate(self._db) as db:
            drop_empty_blocks(db)
            for statement in _DROP_DELETED_KEYS:
                db.execute(statement, (before_ms,))

    def notify(self, rows: int = 1) -> None:
        """``rows`` rows were written: index them soon (the thread starts on the first call)."""
        self._written += rows
        if self._thread is None:
            with self._lock:
                if self._thread is None and not self._stopping:
                    self._thread = threading.Thread(target=self._run, name="soc-side-index", daemon=True)
                    self._thread.start()
        self._wake.set()

    def _run(self) -> None:
        while True:
            self._wake.wait()
            deadline = time.monotonic() + GATHER_SECONDS
            while not self._stopping and self._written < GATHER_ROWS and (left := deadline - time.monotonic()) > 0:
                self._wake.clear()
                self._wake.wait(left)
            self._wake.clear()  # (then the count: rows written after this wake the thread again)
            self._written = 0
            if self._stopping:
                return
            try:
                self.catch_up()
            except sqlite3.Error:  # busy beyond the timeout, disk full, ...: the next write tries again
                log.exception("side index of %s could not catch up; retrying after the next write", self.path)

    def close(self) -> None:
        """Stop the thread (rows it has not indexed yet are indexed by the next store opened on the file)."""
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            self._db.close()
