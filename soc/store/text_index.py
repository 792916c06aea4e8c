"""The embedded store's full-text index: a SQLite file of its own beside the events, kept up by a thread of its own.

Full text uses an FTS5 trigram index (substring search, Chinese included) over *text blocks*: the rows are cut into
blocks of at most BLOCK_ROWS rowids, and a block's body is the distinct words of its messages, lowercased (a word:
what ``str.split`` cuts between whitespace). A block indexes each trigram once instead of once per row (about 8 µs a
row instead of 65 for an index per row), and distinct words instead of distinct messages make its body a third as
long (53 against 153 characters a corpus row: user names, addresses and the fixed words of a message kind repeat).
The index keeps no positions (``detail=none``) and does not fold case (the bodies are lowercased already; folding
again cost 2.4 of 11.4 µs a row).

A searched text is cut into words the same way (``query_words``): a message holding the text holds each of its
words inside one of its own, so the blocks whose body holds every word (each run of it between GLOB's special
characters looked up as a ``GLOB`` on the trigrams) are the candidates; their rows are then checked against the
stored message. Runs shorter than a trigram are not looked up (they only narrow), and a text with none is checked
row by row.

Why a file and a thread of its own: indexing the text costs about as much as inserting the rows (10 against 22 µs
a row for the 1M-line corpus, table and secondary indexes). In the events file it ran inside every write
transaction, on the writer's thread; in its own file it runs beside the writes, on the other CPU, since SQLite locks
each file apart (a transaction on a connection with the other file attached would lock both, so the writer's
connection never attaches it). ``text_state.upto`` is the last rowid indexed: a text search checks the rows after it
directly, so the index lagging the writes (or a store opened before it caught up) never hides a row.

Rowids are never reused (the store hands them out from a high-water mark), so every row after ``upto`` is one the
index has not seen. ``text_state.store`` names the events file the index belongs to (a random id kept in that file):
an index beside an events file made anew starts over.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import threading
from pathlib import Path

from soc.store.wal import immediate, open_wal_database

log = logging.getLogger("yunshu.soc.store")

_TABLES = (
    """CREATE TABLE IF NOT EXISTS text_blocks (
    id INTEGER PRIMARY KEY,
    first_rowid INTEGER NOT NULL,
    last_rowid INTEGER NOT NULL,
    body TEXT NOT NULL
)""",
    """CREATE VIRTUAL TABLE IF NOT EXISTS text_blocks_fts USING fts5(body, content='text_blocks', content_rowid='id',
    tokenize='trigram case_sensitive 1', detail=none, columnsize=0)""",
    """CREATE TRIGGER IF NOT EXISTS text_blocks_ad AFTER DELETE ON text_blocks BEGIN
    INSERT INTO text_blocks_fts(text_blocks_fts, rowid, body) VALUES ('delete', old.id, old.body);
END""",
)
TEXT_SCHEMA = """CREATE TABLE IF NOT EXISTS text_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    store TEXT NOT NULL,
    upto INTEGER NOT NULL
);
""" + "".join(statement + ";\n" for statement in _TABLES)
BLOCK_ROWS = 2000  # rowids a text block spans at most: candidates a rare word costs, against indexing cost
PASS_ROWS = 200_000  # rowids one indexing transaction covers at most (a large backlog goes in several)
# The events file's tables of full text from before it had a file of its own: text blocks (2026-12-01 to 12-03)
# and, before them, one FTS5 row per event. Dropped on opening; the text file is then built from the events.
OLD_TEXT_TABLES = (("TRIGGER", "text_blocks_ad"), ("TABLE", "text_blocks_fts"), ("TABLE", "text_blocks"),
                   ("TRIGGER", "events_ad"), ("TRIGGER", "events_ai"), ("TABLE", "events_fts"))

# text blocks over the rows in (?1, ?3], one for each BLOCK_ROWS of rowids: the distinct words of their messages
_ADD_BLOCKS = """INSERT INTO text_blocks(first_rowid, last_rowid, body)
SELECT min(rowid), max(rowid), yunshu_block_words(group_concat(message, char(10))) FROM ev.events
WHERE rowid > ?1 AND rowid <= ?3 AND message IS NOT NULL AND message != '' GROUP BY rowid / ?2 ORDER BY 1"""
_INDEX_BLOCKS = "INSERT INTO text_blocks_fts(rowid, body) SELECT id, body FROM text_blocks WHERE id > ?"
_DROP_EMPTY_BLOCKS = """DELETE FROM text_blocks WHERE NOT EXISTS
    (SELECT 1 FROM ev.events WHERE rowid BETWEEN text_blocks.first_rowid AND text_blocks.last_rowid)"""


_GLOB_SPECIALS = re.compile(r"[*?\[]")
LOOKUP_WORDS = 4  # words of a searched text looked up at most (the longest: the most selective)


def block_words(messages: str | None) -> str | None:
    """A block's body: the distinct words of its messages (newline-separated), lowercased, joined by spaces."""
    if not messages:
        return None
    return " ".join(dict.fromkeys(messages.lower().split()))


def query_words(text: str) -> list[str]:
    """The GLOB patterns a searched text's candidate blocks must match: the runs of its words without GLOB's special
    characters, as block bodies hold them, at least a trigram long (the LOOKUP_WORDS longest), each anywhere in the
    body. A run of fewer than three characters is left out even when its UTF-8 is three bytes or more: FTS5 (3.40)
    then looks it up as a trigram and finds nothing (``*据9*`` matches no block, though ``*据9户*`` does)."""
    runs = {run for word in text.lower().split() for run in _GLOB_SPECIALS.split(word) if len(run) >= 3}
    return [f"*{run}*" for run in sorted(runs, key=lambda run: (-len(run), run))[:LOOKUP_WORDS]]


def text_path(events_path: Path) -> Path:
    """The text index's file beside an events file (``events.db`` → ``events.text.db``)."""
    return events_path.with_name(f"{events_path.stem}.text{events_path.suffix or '.db'}")


def drop_old_text_tables(db: sqlite3.Connection) -> bool:
    """Drop the full-text tables an events file kept before the text index had a file of its own, in one
    transaction; True when there were any."""
    present = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
    old = [(kind, name) for kind, name in OLD_TEXT_TABLES if name in present]
    if not old:
        return False
    with immediate(db):
        for kind, name in old:  # triggers (naming the FTS tables) first
            db.execute(f"DROP {kind} IF EXISTS {name}")
    return True


class TextIndex:
    """The full-text index of one events file; ``notify`` after a write wakes its thread, which indexes every row
    written since its last pass. Safe to share between threads; several processes may keep the same index (each
    pass reads ``upto`` inside its own write transaction)."""

    def __init__(self, events_path: Path, store_id: str):
        self.path = text_path(events_path)
        self._db = open_wal_database(self.path, TEXT_SCHEMA)
        self._db.create_function("yunshu_block_words", 1, block_words, deterministic=True)
        self._db.execute("ATTACH DATABASE ? AS ev", (str(events_path),))
        self._lock = threading.Lock()  # the connection
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._adopt(store_id)

    def _adopt(self, store_id: str) -> None:
        """Start over when the index was built for another events file (or never): in one transaction, so that
        another process opening the same files at the same time sees either the old index or the new one."""
        with self._lock:
            if self._built_for() == store_id:
                return
            with immediate(self._db) as db:
                if self._built_for() != store_id:  # (unless another process adopted it meanwhile)
                    db.execute("DROP TRIGGER IF EXISTS text_blocks_ad")
                    db.execute("DROP TABLE IF EXISTS text_blocks_fts")
                    db.execute("DROP TABLE IF EXISTS text_blocks")
                    for statement in _TABLES:
                        db.execute(statement)
                    db.execute("DELETE FROM text_state")
                    db.execute("INSERT INTO text_state(id, store, upto) VALUES (1, ?, 0)", (store_id,))

    def _built_for(self) -> str | None:
        row = self._db.execute("SELECT store FROM text_state").fetchone()
        return None if row is None else row[0]

    def catch_up(self) -> int:
        """Index every row written so far (in transactions of at most PASS_ROWS rowids); returns the last rowid
        indexed."""
        while True:
            with self._lock, immediate(self._db) as db:
                upto = db.execute("SELECT upto FROM text_state").fetchone()[0]
                top = db.execute("SELECT coalesce(max(rowid), 0) FROM ev.events").fetchone()[0]
                end = min(top, upto + PASS_ROWS)
                if end > upto:
                    last_block = db.execute("SELECT coalesce(max(id), 0) FROM text_blocks").fetchone()[0]
                    if db.execute(_ADD_BLOCKS, (upto, BLOCK_ROWS, end)).rowcount:
                        db.execute(_INDEX_BLOCKS, (last_block,))
                    db.execute("UPDATE text_state SET upto = ?", (end,))
            if end >= top or self._stopping:  # (closing: the rest is for the next store opened on the file)
                return max(end, upto)

    def drop_empty_blocks(self) -> None:
        """Drop the blocks none of whose rows is left (after deleting events)."""
        with self._lock, immediate(self._db) as db:
            db.execute(_DROP_EMPTY_BLOCKS)

    def notify(self) -> None:
        """Rows were written: index them soon (the thread starts on the first call)."""
        if self._thread is None:
            with self._lock:
                if self._thread is None and not self._stopping:
                    self._thread = threading.Thread(target=self._run, name="soc-text-index", daemon=True)
                    self._thread.start()
        self._wake.set()

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._stopping:
                return
            try:
                self.catch_up()
            except sqlite3.Error:  # busy beyond the timeout, disk full, ...: the next write tries again
                log.exception("text index of %s could not catch up; retrying after the next write", self.path)

    def close(self) -> None:
        """Stop the thread (rows it has not indexed yet are indexed by the next store opened on the file)."""
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            self._db.close()
