"""The embedded store's key tables: the values of its many-valued hot columns (host and user names, source and
destination addresses), each with the row's time and rowid, kept in the side index's file beside the events.

An index on such a column in the events file put a random seek in every insert: 3.6 µs a row for the source address, 2.9
for the host name, 1.8 for the destination (a million corpus rows), about half the writer's cost with the other indexes.
Kept apart, a pass of the side index's thread adds the keys of up to PASS_ROWS rows at once into the latest buckets
(below): about 1 µs a row and key table, off the writer's thread. A filter on such a column then reads its candidate
rows from the key table (``key_candidates``) and the rows the side index has not reached yet directly; the filter itself
is still checked on each row.

A key table is cut into buckets of 2**BUCKET_BITS rowids, first in its key (``bkt``, the rowid shifted right by
BUCKET_BITS): ordered by key alone, each pass put its keys all over the table, and as the table grew a pass touched
more of its pages and wrote them back at its commit (a million corpus rows, the four tables: 3.5 µs a row for the
first passes, 5.8 for the last, and their commits 0.4 growing to 2.3). A pass now adds to the latest bucket or two
only, whatever the store's size (commits 0.5 µs a row throughout). A lookup seeks each bucket in turn (``key_rows``):
a bucket is a B-tree seek, 16 of them a million rows.

A hot column holding a list value (``LIST_MARK`` and a JSON array) has each element as a key of its own, so that a
filter on one element finds the row (the row's own check then looks into the list).
"""

from __future__ import annotations

from typing import Final

from soc.store.rows import LIST_END, LIST_MARK

# columns with a key table: many values each (a random place in an index for every row)
KEYED: Final = ("host_name", "user_name", "source_ip_key", "destination_ip_key")
BUCKET_BITS: Final = 16  # a key table's bucket: the rowids sharing rowid >> BUCKET_BITS (65,536 of them)
# the text columns (the address keys are 16-byte binary and never hold a list)
_MAY_HOLD_LISTS: Final = frozenset({"host_name", "user_name"})

KEY_TABLES: Final = tuple(
    f"""CREATE TABLE IF NOT EXISTS keys_{column} (
    bkt INTEGER NOT NULL,
    key NOT NULL,
    ts INTEGER NOT NULL,
    rid INTEGER NOT NULL,
    PRIMARY KEY (bkt, key, ts, rid)
) WITHOUT ROWID""" for column in KEYED)


def add_keys_sql(column: str) -> str:
    """The statement adding the keys of the rows in (?1, ?2] to ``column``'s key table (each element of a list
    value, the others as they are), in rowid order: a pass adds to its latest bucket or two, whose pages stay in the
    cache, and sorting the keys first cost more than it saved (over a million corpus rows, the four tables: 4.5-5.0
    µs a row sorted, 3.6-3.8 not)."""
    if column not in _MAY_HOLD_LISTS:
        return (f"INSERT OR IGNORE INTO keys_{column}(bkt, key, ts, rid) SELECT rowid >> {BUCKET_BITS}, {column}, ts, "
                f"rowid FROM ev.events WHERE rowid > ?1 AND rowid <= ?2 AND {column} IS NOT NULL")
    listed = f"CASE WHEN e.{column} >= '{LIST_MARK}' AND e.{column} < '{LIST_END}' THEN substr(e.{column}, 2) END"
    return (f"INSERT OR IGNORE INTO keys_{column}(bkt, key, ts, rid) SELECT e.rowid >> {BUCKET_BITS}, "
            f"coalesce(j.value, e.{column}), e.ts, e.rowid FROM ev.events e LEFT JOIN json_each({listed}) j "
            f"WHERE e.rowid > ?1 AND e.rowid <= ?2 AND e.{column} IS NOT NULL")


def drop_deleted_keys_sql(column: str) -> str:
    """The statement dropping ``column``'s keys of rows older than ?1 that the events file no longer holds."""
    return (f"DELETE FROM keys_{column} WHERE ts < ?1 AND NOT EXISTS "
            f"(SELECT 1 FROM ev.events WHERE rowid = keys_{column}.rid)")


def indexed_upto(schema: str) -> str:
    """The SQL of the last rowid the side index attached as ``schema`` has indexed (``index_state.upto``)."""
    return f"(SELECT upto FROM {schema}.index_state)"


def key_rows(schema: str, column: str, test: str, start: bool, end: bool, select: str = "rid") -> str:
    """The SELECT of ``select`` (``rid``, ``ts``) from ``column``'s key table in the side index attached as
    ``schema``: the keys passing ``test`` (``= ?`` or ``BETWEEN ? AND ?``; then ``ts >= ?`` when ``start``, ``ts < ?``
    when ``end``), looked up in each bucket from the table's first to its last (a recursive WITH counts them)."""
    within = "".join([" AND ts >= ?" if start else "", " AND ts < ?" if end else ""])
    table = f"{schema}.keys_{column}"
    return (f"WITH RECURSIVE buckets(b) AS (SELECT min(bkt) FROM {table} UNION ALL SELECT b + 1 FROM buckets "
            f"WHERE b < (SELECT max(bkt) FROM {table})) "
            f"SELECT {select} FROM buckets CROSS JOIN {table} WHERE bkt = buckets.b AND key {test}{within}")


def key_candidates(schema: str, column: str, test: str, start: bool, end: bool) -> str:
    """A condition on ``e.rowid``: the rows whose ``column`` has a key passing ``test`` (``= ?`` or
    ``BETWEEN ? AND ?``; then ``ts >= ?`` when ``start``, ``ts < ?`` when ``end``), and every row the side index
    (attached as ``schema``) has not reached. One IN list: with an OR beside it SQLite would walk the time index for
    ``ORDER BY ts ... LIMIT`` and read the whole store for a rare value."""
    return (f"e.rowid IN ({key_rows(schema, column, test, start, end)} UNION ALL "
            f"SELECT rowid FROM events WHERE rowid > {indexed_upto(schema)})")
