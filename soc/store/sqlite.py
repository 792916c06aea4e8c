"""The embedded event store: one SQLite file (WAL), hot fields in indexed columns, full text in a file beside it.

Every event is kept whole as JSON; the fields analysts filter on most are copied into columns with
indexes: the few-valued ones (system, department) and the time in the events file; the many-valued ones (host and
user names, source and destination addresses) as key tables in the side index's file (:mod:`soc.store.side_index`),
with the full text (FTS5 trigrams over blocks of rows), kept up by a thread of its own. IP addresses are also stored
as 16-byte keys (IPv4 mapped into IPv6) so that a CIDR becomes a ``BETWEEN`` on a key table. The writer's connection
inserts rows only; queries run on a second connection that has the side index attached. Rowids are handed out from
a high-water mark kept in the file (``store_meta``), never reused after a deletion, so that the side index can tell
the rows it has not seen yet.

Filters on an IP field match exactly or by CIDR, on every address the field holds (as Elasticsearch's ip type
does): source.ip and destination.ip (one address each) through their keys; host.ip through its key, which is its first
address, or any further address of a list in the document; the other IP fields (related.ip, ...) in
the document through the registered function ``yunshu_ip_key``.
"""

from __future__ import annotations

import ipaddress
import logging
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.db import DB_INT_MAX
from soc.ecs import Event
from soc.store.base import (
    IP_FIELDS,
    EncodedBatch,
    SearchQuery,
    SearchResult,
    StoreUnavailable,
    WriteResult,
    histogram_step,
    ip_filter_network,
)
from soc.store.doc_codec import DICTIONARIES_SCHEMA, MULTI_COMPRESS_DOCS, DocCodec
from soc.store.key_index import KEYED, indexed_upto, key_candidates, key_rows
from soc.store.rows import (
    COLUMNS,
    IP_KEYS,
    LIST_END,
    LIST_MARK,
    ROW_COLUMNS,
    event_row,
    ip_key,
    lists_made,
    network_range,
    ts_ms,
)
from soc.store.side_index import SideIndex, index_path
from soc.store.sigma_sql import DOC, UnsupportedInSql, register_functions, rule_sql
from soc.store.text_index import drop_old_text_tables, query_words, remove_old_text_file
from soc.store.wal import open_wal_database
from soc.store.writer_process import PackedRows, WriterProcess, rows_of

if TYPE_CHECKING:
    from sigma.rule import SigmaRule

log = logging.getLogger("yunshu.soc.store")

# IP fields whose key column holds only the first address of a list (a host has several addresses)
_LISTED_IP_KEYS = frozenset({"host.ip"})
# Columns with an index in the events file (each with the time): the selective ones with few values (an insert
# lands where the last one with its value did). The many-valued ones have key tables in the side index (an index
# here would put a random seek in every insert); the few-valued columns with little selectivity (dataset, action,
# outcome, level, data class) are filtered within a time range, as is host.ip (its filter also looks into lists).
INDEXED = ("system_id", "department")

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS events (
    rowid INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    ts INTEGER NOT NULL,
    {", ".join(f"{c} TEXT" for c in COLUMNS.values())},
    {", ".join(f"{c} BLOB" for c in IP_KEYS.values())},
    message TEXT,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_ts ON events(ts);
{"".join(f"CREATE INDEX IF NOT EXISTS events_{c} ON events({c}, ts);" for c in INDEXED)}
{"".join(f"DROP INDEX IF EXISTS events_{c};" for c in (*COLUMNS.values(), *IP_KEYS.values()) if c not in INDEXED)}
CREATE TABLE IF NOT EXISTS listed_columns (name TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS store_meta (key TEXT PRIMARY KEY, value);
{DICTIONARIES_SCHEMA}
"""


def cidr_range(cidr: str) -> tuple[bytes, bytes]:
    """First and last 16-byte keys of a CIDR network (host bits ignored); ValueError naming a malformed one."""
    return network_range(ip_filter_network("cidr", cidr))


def _sql_ip_key(value: Any) -> bytes | None:
    """``yunshu_ip_key(x)``: the 16-byte key of an address in SQL (NULL for anything else)."""
    return ip_key(value) if isinstance(value, str) else None


def _json_bytes(doc: bytes) -> bytes:
    """``event_row``'s document as its JSON bytes (the store encodes a batch's documents together)."""
    return doc


def _as_integer(text: str) -> int | str:
    """``text`` as the integer it writes, when SQLite can hold it (JSON numbers compare as numbers), else as is."""
    if text.lstrip("-").isdigit():
        number = int(text)
        if -DB_INT_MAX - 1 <= number <= DB_INT_MAX:
            return number
    return text


def _add_candidates(column: str, test: str, bounds: list[Any], q: SearchQuery, clauses: list[str],
                    params: list[Any]) -> None:
    """Narrow a query to the rows whose ``column`` has a key passing ``test`` with ``bounds`` (within the query's time
    range) or that the side index has not reached; the filter itself is still checked on each row."""
    clauses.append(key_candidates("ix", column, test, q.start is not None, q.end is not None))
    params.extend([*bounds, *_time_bounds(q)])


def _time_bounds(q: SearchQuery) -> list[int]:
    """The parameters of a key table's ``ts >= ?`` / ``ts < ?`` for the query's time range (see ``key_rows``)."""
    return [ts_ms(t) for t in (q.start, q.end) if t is not None]


def _range_test(first: bytes, last: bytes) -> tuple[str, list[Any]]:
    """The test of an address key against a network's first and last keys (one address: equality), and its
    parameters."""
    return ("= ?", [first]) if first == last else ("BETWEEN ? AND ?", [first, last])


_UPTO = indexed_upto("ix")
KEYS_COUNTED = 100_000  # keys counted at most to tell which keyed condition of a query is the rarest


def _key_only(q: SearchQuery) -> tuple[str, list[Any]] | None:
    """When a query's one condition (besides its time range) is on a keyed column, the SELECT of the matching
    rows' (rid, ts) from its key table, which holds exactly the rows the condition keeps among those the side index
    has reached (each element of a list value is a key; an address field's key is its one address), with its
    parameters; else None. Such a query's count and newest page come from the key table, not from the rows."""
    conditions = [*q.where.items(), *q.cidr.items()]
    if len(conditions) != 1 or q.departments is not None or (q.text and q.text.strip()):
        return None
    field, value = conditions[0]
    if field in IP_FIELDS:
        column = IP_KEYS.get(field)
        if column not in KEYED:
            return None
        test, bounds = _range_test(*network_range(ip_filter_network(field, value)))
    else:
        column = COLUMNS.get(field)
        if column not in KEYED:
            return None
        test, bounds = "= ?", [str(value)]
    return (key_rows("ix", column, test, q.start is not None, q.end is not None, "rid, ts"),
            [*bounds, *_time_bounds(q)])


def _json_path(field: str) -> str:
    return "$." + ".".join(f'"{p}"' for p in field.split("."))


# CPython 3.11's sqlite3 passes each parameter that is not an int, float, str or bytearray through its adaptation
# protocol, which for None and bytes ends in an AttributeError raised and cleared (its PrepareProtocol type has no
# ``__adapt__``): about 0.1 µs a parameter, and 5 to 7 of a row's 21 are None or bytes. An adapter registered for
# their types is found first; these return the value itself (``bytes(b)`` is ``b``; ``{}.get(None)`` is None).
# Registering one for a type other than int, float, str or bytearray leaves sqlite3's fast path for those as it is.
sqlite3.register_adapter(bytes, bytes)
sqlite3.register_adapter(type(None), {}.get)

ROWS_PER_STATEMENT = 500  # rows per INSERT statement (21 values each, within SQLite's 32,766 parameters)
_INSERT_HEAD = f"INSERT OR IGNORE INTO events(rowid, {', '.join(ROW_COLUMNS)}) VALUES "
_ROW_MARKS = "(" + ",".join("?" * (1 + len(ROW_COLUMNS))) + ")"


def insert_rows(db: sqlite3.Connection, rows: list[tuple[Any, ...]], first_rowid: int) -> int:
    """Insert prepared rows (ROW_COLUMNS) as rowids ``first_rowid``, ``first_rowid + 1``, ... with multi-row INSERT
    statements (a duplicate id leaves its rowid unused); returns how many were new.

    One statement per ROWS_PER_STATEMENT rows rather than one per row (``executemany``): sqlite3 releases the GIL
    around every statement it runs, and a thread taking it back waits out the switch interval while another thread
    parses, so per-row statements crawl as soon as parsing runs beside the writes.
    """
    created = 0
    for at in range(0, len(rows), ROWS_PER_STATEMENT):
        chunk = rows[at:at + ROWS_PER_STATEMENT]
        sql = _INSERT_HEAD + ",".join([_ROW_MARKS] * len(chunk))
        params: list[Any] = []
        for rowid, row in enumerate(chunk, first_rowid + at):
            params.append(rowid)
            params.extend(row)
        created += db.execute(sql, params).rowcount
    return created

# the next rowid to hand out: past every rowid the store ever held (stores before 2026-12-03 kept no mark)
_NEXT_ROWID = """SELECT max(coalesce((SELECT value FROM store_meta WHERE key = 'next_rowid'), 1),
    (SELECT coalesce(max(rowid), 0) + 1 FROM events))"""
_SET_NEXT_ROWID = """INSERT INTO store_meta(key, value) VALUES ('next_rowid', ?)
    ON CONFLICT(key) DO UPDATE SET value = excluded.value"""


_HOT_TEXT = tuple(COLUMNS.values())
# which hot columns of the rows after ?3 hold a list value (one pass over the rows of the write in progress)
_FIND_LISTS = "SELECT " + ", ".join(f"max({c} >= ?1 AND {c} < ?2)" for c in _HOT_TEXT) + " FROM events WHERE rowid > ?3"


def note_listed_columns(db: sqlite3.Connection, last_rowid: int) -> None:
    """Remember the hot columns that hold a list value in a row after ``last_rowid`` (``listed_columns``): only
    their filters and terms look into the lists, so stores of single-valued events keep their plain queries."""
    flags = db.execute(_FIND_LISTS, (LIST_MARK, LIST_END, last_rowid)).fetchone()
    names = [(column,) for column, flag in zip(_HOT_TEXT, flags, strict=True) if flag]
    if names:
        db.executemany("INSERT OR IGNORE INTO listed_columns(name) VALUES (?)", names)


def write_rows(db: sqlite3.Connection, rows: list[tuple[Any, ...]], lists: bool = True) -> int:
    """Insert prepared rows in one transaction, as rowids past every rowid the store ever held; returns how many
    were new. ``lists``: some row may hold a list value (``EncodedBatch.lists``; False saves the pass that looks).
    The caller rolls back on error."""
    db.execute("BEGIN IMMEDIATE")
    first = db.execute(_NEXT_ROWID).fetchone()[0]
    created = insert_rows(db, rows, first)
    if lists:
        note_listed_columns(db, first - 1)
    db.execute(_SET_NEXT_ROWID, (first + len(rows),))
    db.execute("COMMIT")
    return created


def store_id(db: sqlite3.Connection) -> str:
    """The events file's own random id (made on first use): what its text index is built for."""
    db.execute("INSERT OR IGNORE INTO store_meta(key, value) VALUES ('store_id', ?)", (uuid.uuid4().hex,))
    return db.execute("SELECT value FROM store_meta WHERE key = 'store_id'").fetchone()[0]


# The event store's own tuning: a 64 MiB page cache (the default 2 MiB thrashes once the indexes outgrow it) and a
# checkpoint every ~40 MiB of WAL (2500 pages of 16 KiB) instead of every 4 MiB (hot index pages are written back
# once, not per batch).
# Pages of 16 KiB for a new store: fewer, shallower index pages to rewrite per transaction (measured about a third
# less time a row than with 4 KiB pages, and a smaller file).
EVENT_STORE_PAGE_SIZE = 16384
EVENT_STORE_PRAGMAS = ("PRAGMA cache_size=-65536", "PRAGMA wal_autocheckpoint=2500")


class SQLiteStore:
    """EventStore on a SQLite file; safe to share between threads. Writes go through one connection (and its
    lock), queries through another that has the text index's file attached (and its own lock): a query does not
    wait for a write, and the writer's transactions never lock the text file."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._db = open_wal_database(self.path, SCHEMA, EVENT_STORE_PAGE_SIZE)
        drop_old_text_tables(self._db)  # stores before 2026-12-03 kept full text in this file
        for pragma in EVENT_STORE_PRAGMAS:
            self._db.execute(pragma)
        self._codec = DocCodec(self._dictionaries, self._keep_dictionary)
        if remove_old_text_file(self.path):
            log.info("%s: the text index's file of 2026-12-03 is removed; the side index is built anew", self.path)
        self._side = SideIndex(self.path, store_id(self._db))
        self._child: WriterProcess | None = None  # while ``writes_in_child``
        self._read_lock = threading.Lock()
        self._reader = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        self._reader.execute(EVENT_STORE_PRAGMAS[0])
        register_functions(self._reader)
        self._reader.create_function("yunshu_ip_key", 1, _sql_ip_key, deterministic=True)
        self._reader.create_function("yunshu_doc", 1, self._codec.text, deterministic=True)
        self._reader.execute("ATTACH DATABASE ? AS ix", (str(index_path(self.path)),))
        if lag := self.text_index_lag():
            self._side.notify(lag)  # rows the index has not seen (a store closed before it caught up, or migrated)

    def _dictionaries(self) -> list[tuple[int, bytes]]:
        """The document dictionaries in the file, oldest first."""
        with self._lock:
            return self._db.execute("SELECT id, data FROM doc_dictionaries ORDER BY added, id").fetchall()

    def _keep_dictionary(self, dict_id: int, data: bytes) -> bool:
        """Keep a new document dictionary in the file; False when another one holds its id."""
        with self._lock:
            self._db.execute("INSERT OR IGNORE INTO doc_dictionaries(id, data, added) VALUES (?, ?, ?)",
                             (dict_id, data, time.time()))
            return self._db.execute("SELECT data FROM doc_dictionaries WHERE id = ?", (dict_id,)).fetchone()[0] == data

    def text_index_lag(self) -> int:
        """Rows written that the side index (full text and key tables) has not reached yet (a text search or a filter
        on a keyed column checks them one by one)."""
        return max(0, self._query("SELECT (SELECT coalesce(max(rowid), 0) FROM events) - upto FROM ix.index_state",
                                  [])[0][0])

    def wait_indexed(self) -> None:
        """Return once the side index covers every row written so far (search never needs it: rows the index has
        not reached are checked directly; benchmarks and tests that look at the index do)."""
        self._side.catch_up()

    # --- writing --------------------------------------------------------------------------------------
    def encode(self, docs: list[tuple[str, Event]]) -> EncodedBatch:
        """The rows of ``docs`` (the CPU-bound half of ``write``: JSON, hot columns, address keys); a document that
        cannot become a row is rejected here. Needs no lock: the pipeline runs it in its parsing thread."""
        encoded = EncodedBatch(payload=[])
        rows = encoded.payload
        before = lists_made()
        codec = self._codec
        together = len(docs) >= MULTI_COMPRESS_DOCS  # else each row is made with its stored document at once
        encode_doc = _json_bytes if together else codec.encoder()
        for doc_id, event in docs:
            try:
                rows.append(event_row(doc_id, event, encode_doc))
            except (KeyError, ValueError, TypeError) as exc:
                encoded.rejected.append((doc_id, f"{type(exc).__name__}: {exc}"))
        if together and rows:  # the documents' stored forms, all at once
            stored = codec.encode_many([row[-1] for row in rows])
            encoded.payload = [(*row[:-1], doc) for row, doc in zip(rows, stored, strict=True)]
        encoded.lists = lists_made() != before
        if self._child is not None:  # packed for the writer process here, while the rows are in the caches
            encoded.payload = PackedRows.of(encoded.payload)
        return encoded

    def write(self, docs: list[tuple[str, Event]]) -> WriteResult:
        """Insert in one transaction; ids already present are duplicates."""
        return self.write_encoded(self.encode(docs))

    @contextmanager
    def writes_in_child(self) -> Iterator[None]:
        """Meanwhile, writes (``write``, ``write_encoded``) go to a process of their own, which also keeps the side
        index up (see :mod:`soc.store.writer_process`): for a long import, whose parsing then has this process's GIL
        to itself. Nested uses share one child."""
        if self._child is not None:
            yield
            return
        self._child = WriterProcess(self.path)
        try:
            yield
        finally:
            child, self._child = self._child, None
            child.close()
            if lag := self.text_index_lag():  # what the child's side index left (it stops with the child)
                self._side.notify(lag)

    def write_encoded(self, encoded: EncodedBatch) -> WriteResult:
        """Insert rows made by ``encode`` in one transaction (the database half of ``write``)."""
        if (child := self._child) is not None:
            return child.write(encoded)
        rows = rows_of(encoded.payload)
        result = WriteResult(rejected=list(encoded.rejected))
        unusable = len(result.rejected)  # rejected before the database saw them
        with self._lock:
            try:
                created = write_rows(self._db, rows, encoded.lists)
            except sqlite3.OperationalError as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise StoreUnavailable(f"embedded store {self.path}: {exc}") from exc
            except Exception:  # a row the database refuses: store the others one by one, reject that row
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                created = self._write_one_by_one(rows, result, encoded.lists)
            result.created = max(created, 0)
        if result.created:
            self._side.notify(result.created)
        result.duplicates = len(rows) - result.created - (len(result.rejected) - unusable)
        return result

    def _write_one_by_one(self, rows: list[tuple[Any, ...]], result: WriteResult, lists: bool) -> int:
        created = 0
        for row in rows:
            try:
                created += write_rows(self._db, [row], lists)
            except sqlite3.OperationalError as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise StoreUnavailable(f"embedded store {self.path}: {exc}") from exc
            except Exception as exc:  # whatever the row's fault, the rest of the batch goes on
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                result.rejected.append((row[0], f"refused by the embedded store: {type(exc).__name__}: {exc}"))
        return created

    # --- reading --------------------------------------------------------------------------------------
    def _listed(self) -> frozenset[str]:
        """The hot columns some row holds a list value in."""
        return frozenset(name for (name,) in self._query("SELECT name FROM listed_columns", []))

    def _where(self, q: SearchQuery, listed: frozenset[str] | None = None,
               candidates: bool = True) -> tuple[str, list[Any]]:
        """The WHERE clause of a query and its parameters; ``listed``: the columns holding lists, when the caller
        has read them already; ``candidates``: False leaves out the key tables' candidate rows (for a caller that reads
        the key table itself)."""
        clauses, params = [], []
        pending: list[tuple[str, str, list[Any]]] | None = [] if candidates else None  # keyed conditions
        if listed is None:
            listed = self._listed() if q.where else frozenset()
        if q.start:
            clauses.append("e.ts >= ?")
            params.append(ts_ms(q.start))
        if q.end:
            clauses.append("e.ts < ?")
            params.append(ts_ms(q.end))
        for field, value in q.where.items():
            column = COLUMNS.get(field)
            if field in IP_FIELDS:  # an address, or a CIDR as Elasticsearch takes in a term on an ip field
                self._ip_clause(field, ip_filter_network(field, value), q, clauses, params, pending)
                continue
            if pending is not None and column in KEYED:  # candidate rows from its key table (a list's elements too)
                pending.append((column, "= ?", [str(value)]))
            if column in listed:  # the value, or an element of a list value
                clauses.append(f"(e.{column} = ? OR (e.{column} >= ? AND e.{column} < ? AND EXISTS "
                               f"(SELECT 1 FROM json_each(substr(e.{column}, 2)) WHERE value = ?)))")
                params.extend([str(value), LIST_MARK, LIST_END, str(value)])
            elif column:
                clauses.append(f"e.{column} = ?")
                params.append(str(value))
            else:  # json_each yields a scalar itself, or each element of a list; numbers match as numbers too
                clauses.append(f"EXISTS (SELECT 1 FROM json_each({DOC}, ?) WHERE value IN (?, ?))")
                text = str(value)
                params.extend([_json_path(field), text, _as_integer(text)])
        for field, cidr in q.cidr.items():
            if field not in IP_FIELDS:
                raise ValueError(f"CIDR search is supported on {', '.join(IP_FIELDS)}, not {field}")
            self._ip_clause(field, ip_filter_network(field, cidr), q, clauses, params, pending)
        if pending:  # the rows of one keyed condition are the candidates: its key table's rarest (see _fewest_keys)
            column, test, bounds = pending[0] if len(pending) == 1 else self._fewest_keys(pending, q)
            _add_candidates(column, test, bounds, q, clauses, params)
        if q.text and q.text.strip():  # blank text: no condition
            text = q.text.strip()
            patterns = query_words(text)
            if patterns:  # candidates: the rows of the blocks holding every word, and those the index has not reached
                # (one IN list: with an OR beside it SQLite would walk the time index for ORDER BY ts ... LIMIT)
                lookup = " INTERSECT ".join(["SELECT rowid FROM ix.text_blocks_fts WHERE text_blocks_fts.body GLOB ?"]
                                            * len(patterns))
                clauses.append("e.rowid IN (SELECT x.rowid FROM ix.text_blocks b JOIN events x ON x.rowid BETWEEN "
                               f"b.first_rowid AND b.last_rowid WHERE b.id IN ({lookup}) UNION ALL SELECT rowid FROM "
                               f"events WHERE rowid > {_UPTO})")
                params.extend(patterns)
            clauses.append("sigma_lower(e.message) LIKE ? ESCAPE '\\'")  # case folded in every script
            params.append("%" + text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%")
        if q.departments is not None:  # (beside candidate rows, not through its index: a department's rows are many)
            driven = any(clause.startswith("e.rowid IN") for clause in clauses)
            clauses.append(f"{'+' if driven else ''}e.department IN ({', '.join('?' * len(q.departments)) or 'NULL'})")
            params.extend(sorted(q.departments))
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params

    def _fewest_keys(self, keyed: list[tuple[str, str, list[Any]]], q: SearchQuery) -> tuple[str, str, list[Any]]:
        """Of a query's keyed conditions (column, test, bounds), the one with the fewest keys in the query's time range
        (counted up to KEYS_COUNTED). Its candidate rows alone drive the query: each row is checked against every
        condition anyway, and with a candidate list for each SQLite took the first as it came — a host of 300,000
        events with a user of 20,000 read the host's 300,000 rows (0.4 s warm, 11 s from a cold page cache, a
        million corpus rows) where the user's would do."""
        def counted(condition: tuple[str, str, list[Any]]) -> int:
            column, test, bounds = condition
            rows = key_rows("ix", column, test, q.start is not None, q.end is not None, "1")
            return self._query(f"SELECT count(*) FROM ({rows} LIMIT {KEYS_COUNTED})", [*bounds, *_time_bounds(q)])[0][0]
        return min(keyed, key=counted)

    @staticmethod
    def _ip_clause(field: str, net: ipaddress.IPv4Network | ipaddress.IPv6Network, q: SearchQuery,
                   clauses: list[str], params: list[Any], pending: list[tuple[str, str, list[Any]]] | None) -> None:
        """Events where some address of ``field`` lies in ``net`` (one address: an exact match); a keyed field's
        condition is added to ``pending`` (its candidate rows), unless None."""
        column = IP_KEYS.get(field)
        test, bounds = _range_test(*network_range(net))
        if pending is not None and column in KEYED:
            pending.append((column, test, bounds))
        if column and field not in _LISTED_IP_KEYS:  # one address per event: the key alone
            clauses.append(f"e.{column} {test}")
            params.extend(bounds)
            return
        # json_each yields a scalar itself (key NULL) or each element of a list (key = its index)
        further = "key > 0 AND " if column else ""  # the key column holds a list's first address
        in_doc = f"EXISTS (SELECT 1 FROM json_each({DOC}, ?) WHERE {further}yunshu_ip_key(value) {test})"
        if column:
            clauses.append(f"(e.{column} {test} OR {in_doc})")
            params.extend([*bounds, _json_path(field), *bounds])
        else:
            clauses.append(in_doc)
            params.extend([_json_path(field), *bounds])

    def _query(self, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
        with self._read_lock:
            try:
                return self._reader.execute(sql, params).fetchall()
            except sqlite3.OperationalError as exc:
                raise StoreUnavailable(f"embedded store {self.path}: {exc}") from exc

    def _keyed_rows(self, q: SearchQuery) -> tuple[str, list[Any]] | None:
        """For a query whose one condition is a keyed field (``_key_only``): a subquery of the (rid, ts) of every row
        it keeps, from the key table and, past the side index, from the rows; with its parameters. Else None."""
        keyed = _key_only(q)
        if keyed is None:
            return None
        keys, key_params = keyed
        where, params = self._where(q, candidates=False)  # (never empty: the field's own condition)
        return (f"({keys} UNION ALL SELECT e.rowid, e.ts FROM events e{where} AND e.rowid > {_UPTO})",
                [*key_params, *params])

    def search(self, query: SearchQuery) -> SearchResult:
        keyed = self._keyed_rows(query)
        if keyed is None:
            where, params = self._where(query)  # (once for the page and the count: it may count keys, _fewest_keys)
            rows = self._query(f"SELECT e.id, e.doc FROM events e{where} ORDER BY e.ts DESC, e.rowid DESC LIMIT ?",
                               [*params, query.limit])
            total = self._count_of(f"events e{where}", params)
        else:  # the newest keys first, then only those rows (not every candidate row read and sorted)
            keyed_rows, params = keyed
            rows = self._query(f"SELECT e.id, e.doc FROM events e WHERE e.rowid IN (SELECT rid FROM {keyed_rows} "
                               "ORDER BY ts DESC, rid DESC LIMIT ?) ORDER BY e.ts DESC, e.rowid DESC",
                               [*params, query.limit])
            total = self._count_of(keyed_rows, params)
        return SearchResult(total, [(doc_id, self._codec.loads(doc)) for doc_id, doc in rows])

    def count(self, query: SearchQuery) -> int:
        keyed = self._keyed_rows(query)
        if keyed is None:
            where, params = self._where(query)
            return self._count_of(f"events e{where}", params)
        return self._count_of(*keyed)

    def _count_of(self, rows: str, params: list[Any]) -> int:
        """``SELECT count(*) FROM`` ``rows`` (a table with its WHERE, or a subquery)."""
        return self._query(f"SELECT count(*) FROM {rows}", params)[0][0]

    def terms(self, field_name: str, query: SearchQuery, size: int = 10) -> list[tuple[str, int]]:
        listed = self._listed()
        where, params = self._where(query, listed)
        column = COLUMNS.get(field_name)
        if column in listed:
            rows = self._terms_with_lists(column, where, params, size)
        elif column:
            sql = (f"SELECT e.{column} AS v, count(*) AS n FROM events e{where}"
                   f"{' AND' if where else ' WHERE'} e.{column} IS NOT NULL GROUP BY v ORDER BY n DESC, v LIMIT ?")
            rows = self._query(sql, [*params, size])
        else:
            sql = (f"SELECT j.value AS v, count(*) AS n FROM events e, json_each({DOC}, ?) j{where} "
                   "GROUP BY v ORDER BY n DESC, v LIMIT ?")
            rows = self._query(sql, [_json_path(field_name), *params, size])
        return [(str(v), n) for v, n in rows]

    def _terms_with_lists(self, column: str, where: str, params: list[Any], size: int) -> list[tuple[Any, int]]:
        """Top values of a hot column some rows hold lists in, each element counted (as terms on a multi-valued
        keyword). The lists are few: their elements are counted apart, then the plain values' top ``size`` plus
        as many again as there are list elements (no other value can rank above those), with the exact plain
        counts of the list elements."""
        joiner = " AND" if where else " WHERE"
        marked = f"e.{column} >= ? AND e.{column} < ?"
        in_lists = dict(self._query(
            f"SELECT j.value, count(*) FROM events e, json_each(substr(e.{column}, 2)) j{where}{joiner} {marked} "
            "GROUP BY j.value", [*params, LIST_MARK, LIST_END]))
        counts = dict(self._query(
            f"SELECT e.{column} AS v, count(*) AS n FROM events e{where}{joiner} e.{column} IS NOT NULL "
            f"AND NOT ({marked}) GROUP BY v ORDER BY n DESC, v LIMIT ?",
            [*params, LIST_MARK, LIST_END, size + len(in_lists)]))
        values = sorted(set(in_lists) - set(counts))
        for at in range(0, len(values), 500):
            chunk = values[at:at + 500]
            counts.update(self._query(
                f"SELECT e.{column}, count(*) FROM events e{where}{joiner} e.{column} IN "
                f"({', '.join('?' * len(chunk))}) GROUP BY e.{column}", [*params, *chunk]))
        for value, n in in_lists.items():
            counts[value] = counts.get(value, 0) + n
        return sorted(counts.items(), key=lambda item: (-item[1], str(item[0])))[:size]

    def date_histogram(self, query: SearchQuery, interval: str, offset_minutes: int = 0) -> list[tuple[datetime, int]]:
        step = histogram_step(interval) * 1000
        shift = int(offset_minutes) * 60_000
        bucket = f"(ts + {shift}) - (ts + {shift}) % {step} - {shift}"
        keyed = self._keyed_rows(query)  # (the times from the key table, and from the rows past the side index)
        if keyed is None:
            where, params = self._where(query)
            rows = self._query(f"SELECT {bucket} AS b, count(*) FROM events e{where} GROUP BY b ORDER BY b", params)
        else:
            keyed_rows, params = keyed
            rows = self._query(f"SELECT {bucket} AS b, count(*) FROM {keyed_rows} GROUP BY b ORDER BY b", params)
        return [(datetime.fromtimestamp(b / 1000, UTC), n) for b, n in rows]

    def hunt(self, rule: SigmaRule, query: SearchQuery) -> SearchResult:
        try:
            keep: list[object] = []  # the matcher's predicates the SQL calls, registered while this is held
            condition, rule_params = rule_sql(rule, keep)
        except UnsupportedInSql as exc:
            raise ValueError(str(exc)) from None
        where, params = self._where(query)
        where = f"{where} AND {condition}" if where else f" WHERE {condition}"
        params = [*params, *rule_params]
        total = self._query(f"SELECT count(*) FROM events e{where}", params)[0][0]
        rows = self._query(f"SELECT e.id, e.doc FROM events e{where} ORDER BY e.ts DESC, e.rowid DESC LIMIT ?",
                           [*params, query.limit])
        return SearchResult(total, [(doc_id, self._codec.loads(doc)) for doc_id, doc in rows])

    def delete_before(self, cutoff: datetime, data_class: str | None) -> int:
        condition = "data_class IS NULL" if data_class is None else "data_class = ?"
        params: list[Any] = [ts_ms(cutoff)] + ([] if data_class is None else [data_class])
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                deleted = self._db.execute(f"DELETE FROM events WHERE ts < ? AND {condition}", params).rowcount
                self._db.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise StoreUnavailable(f"embedded store {self.path}: {exc}") from exc
        if deleted:
            try:
                self._side.drop_deleted(ts_ms(cutoff))
            except sqlite3.OperationalError as exc:  # the events are gone; a stale block or key only adds a candidate
                log.warning("side index of %s not cleaned after a deletion: %s", self.path, exc)
        return deleted

    def close(self) -> None:
        self._side.close()
        with self._read_lock:
            self._reader.close()
        with self._lock:
            self._db.close()
