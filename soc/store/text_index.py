"""The embedded store's full-text index: text blocks in the side index's file (:mod:`soc.store.side_index`).

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

Rows the side index has not reached yet (past its ``upto``) are checked directly, so a text search never misses one.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

from soc.store.wal import immediate

TEXT_TABLES = (
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
# what TEXT_TABLES make, in the order they are dropped (the trigger names the FTS table)
_TEXT_OBJECTS = (("TRIGGER", "text_blocks_ad"), ("TABLE", "text_blocks_fts"), ("TABLE", "text_blocks"))
TEXT_DROPS = tuple(f"DROP {kind} IF EXISTS {name}" for kind, name in _TEXT_OBJECTS)
BLOCK_ROWS = 2000  # rowids a text block spans at most: candidates a rare word costs, against indexing cost
# The events file's tables of full text from before it had a file of its own: text blocks (2026-12-01 to 12-03)
# and, before them, one FTS5 row per event. Dropped on opening; the side index is then built from the events.
OLD_TEXT_TABLES = (*_TEXT_OBJECTS, ("TRIGGER", "events_ad"), ("TRIGGER", "events_ai"), ("TABLE", "events_fts"))

# the text block of the rows in (?1, ?2] (within one BLOCK_ROWS of rowids), when one of them has a message: the
# distinct words of their messages. One statement a block rather than a GROUP BY over the pass: SQLite cannot tell
# that rowid / BLOCK_ROWS follows the rowid order and sorted every message of the pass first (2.0 against 1.75 µs a
# row, a million corpus rows).
_ADD_BLOCK = """INSERT INTO text_blocks(first_rowid, last_rowid, body)
SELECT * FROM (SELECT min(rowid) AS first, max(rowid), yunshu_block_words(group_concat(message, char(10)))
    FROM ev.events WHERE rowid > ?1 AND rowid <= ?2 AND message IS NOT NULL AND message != '')
WHERE first IS NOT NULL"""
_INDEX_BLOCKS = "INSERT INTO text_blocks_fts(rowid, body) SELECT id, body FROM text_blocks WHERE id > ?"
_DROP_EMPTY_BLOCKS = """DELETE FROM text_blocks WHERE NOT EXISTS
    (SELECT 1 FROM ev.events WHERE rowid BETWEEN text_blocks.first_rowid AND text_blocks.last_rowid)"""


_GLOB_SPECIALS = re.compile(r"[*?\[]")
LOOKUP_WORDS = 4  # words of a searched text looked up at most (the longest: the most selective)


def query_words(text: str) -> list[str]:
    """The GLOB patterns a searched text's candidate blocks must match: the runs of its words without GLOB's special
    characters, as block bodies hold them, at least a trigram long (the LOOKUP_WORDS longest), each anywhere in the
    body. A run of fewer than three characters is left out even when its UTF-8 is three bytes or more: FTS5 (3.40)
    then looks it up as a trigram and finds nothing (``*据9*`` matches no block, though ``*据9户*`` does)."""
    runs = {run for word in text.lower().split() for run in _GLOB_SPECIALS.split(word) if len(run) >= 3}
    return [f"*{run}*" for run in sorted(runs, key=lambda run: (-len(run), run))[:LOOKUP_WORDS]]


def text_path(events_path: Path) -> Path:
    """Where the text index of 2026-12-03 kept its file, beside an events file (``events.db`` → ``events.text.db``);
    the side index's file holds it since."""
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


def add_text_blocks(db: sqlite3.Connection, upto: int, end: int) -> None:
    """Index the messages of the rows in (``upto``, ``end``] as text blocks (inside the caller's transaction, on the
    side index's connection: the events file attached as ``ev``)."""
    last_block = db.execute("SELECT coalesce(max(id), 0) FROM text_blocks").fetchone()[0]
    added = 0
    for first in range(upto + 1 - (upto + 1) % BLOCK_ROWS, end + 1, BLOCK_ROWS):  # the blocks rowid // BLOCK_ROWS cuts
        added += db.execute(_ADD_BLOCK, (max(first - 1, upto), min(first + BLOCK_ROWS - 1, end))).rowcount
    if added:
        db.execute(_INDEX_BLOCKS, (last_block,))


def drop_empty_blocks(db: sqlite3.Connection) -> None:
    """Drop the blocks none of whose rows is left (after deleting events; inside the caller's transaction)."""
    db.execute(_DROP_EMPTY_BLOCKS)


def remove_old_text_file(events_path: Path) -> bool:
    """Remove the text index's own file of 2026-12-03 (and its WAL) beside an events file, now that the side index
    holds the text; True when there was one."""
    old = text_path(events_path)
    found = old.exists()
    for leftover in (old, old.with_name(old.name + "-wal"), old.with_name(old.name + "-shm")):
        leftover.unlink(missing_ok=True)
    return found
