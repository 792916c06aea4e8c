"""The embedded store's key tables: the values of its many-valued hot columns (host and user names, source and
destination addresses), each with the row's time and rowid, kept in the side index's file beside the events.

An index on such a column in the events file put a random seek in every insert: 3.6 µs a row for the source address,
2.9 for the host name, 1.8 for the destination (a million corpus rows), about half the writer's cost with the other
indexes. Kept apart, a pass of the side index's thread adds the keys of up to PASS_ROWS rows at once, sorted
(``ORDER BY``): about 1 µs a row and key table, off the writer's thread. A filter on such a column then reads its
candidate rows from the key table (``key_candidates``) and the rows the side index has not reached yet directly; the
filter itself is still checked on each row.

A hot column holding a list value (``LIST_MARK`` and a JSON array) has each element as a key of its own, so that a
filter on one element finds the row (the row's own check then looks into the list).
"""

from __future__ import annotations

from typing import Final

from soc.store.rows import LIST_END, LIST_MARK

# columns with a key table: many values each (a random place in an index for every row)
KEYED: Final = ("host_name", "user_name", "source_ip_key", "destination_ip_key")
# the text columns (the address keys are 16-byte binary and never hold a list)
_MAY_HOLD_LISTS: Final = frozenset({"host_name", "user_name"})

KEY_TABLES: Final = tuple(
    f"""CREATE TABLE IF NOT EXISTS keys_{column} (
    key NOT NULL,
    ts INTEGER NOT NULL,
    rid INTEGER NOT NULL,
    PRIMARY KEY (key, ts, rid)
) WITHOUT ROWID""" for column in KEYED)


def add_keys_sql(column: str) -> str:
    """The statement adding the keys of the rows in (?1, ?2] to ``column``'s key table (each element of a list
    value, the others as they are), sorted: a pass appends to the table's pages in order rather than seeking."""
    if column not in _MAY_HOLD_LISTS:
        return (f"INSERT OR IGNORE INTO keys_{column}(key, ts, rid) SELECT {column}, ts, rowid FROM ev.events "
                f"WHERE rowid > ?1 AND rowid <= ?2 AND {column} IS NOT NULL ORDER BY 1, 2, 3")
    listed = f"CASE WHEN e.{column} >= '{LIST_MARK}' AND e.{column} < '{LIST_END}' THEN substr(e.{column}, 2) END"
    return (f"INSERT OR IGNORE INTO keys_{column}(key, ts, rid) SELECT coalesce(j.value, e.{column}), e.ts, e.rowid "
            f"FROM ev.events e LEFT JOIN json_each({listed}) j "
            f"WHERE e.rowid > ?1 AND e.rowid <= ?2 AND e.{column} IS NOT NULL ORDER BY 1, 2, 3")


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
    when ``end``)."""
    within = "".join([" AND ts >= ?" if start else "", " AND ts < ?" if end else ""])
    return f"SELECT {select} FROM {schema}.keys_{column} WHERE key {test}{within}"


def key_candidates(schema: str, column: str, test: str, start: bool, end: bool) -> str:
    """A condition on ``e.rowid``: the rows whose ``column`` has a key passing ``test`` (``= ?`` or
    ``BETWEEN ? AND ?``; then ``ts >= ?`` when ``start``, ``ts < ?`` when ``end``), and every row the side index
    (attached as ``schema``) has not reached. One IN list: with an OR beside it SQLite would walk the time index for
    ``ORDER BY ts ... LIMIT`` and read the whole store for a rare value."""
    return (f"e.rowid IN ({key_rows(schema, column, test, start, end)} UNION ALL "
            f"SELECT rowid FROM events WHERE rowid > {indexed_upto(schema)})")
