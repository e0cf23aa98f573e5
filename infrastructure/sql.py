"""One way to run SQL on either store, over the event store's own connection pools.

Statements are written once with psycopg's ``%(name)s`` placeholders and translated for
SQLite; tables are named through :meth:`SqlDatabase.table` so a PostgreSQL schema applies.
Sharing the event store's pool matters on SQLite, whose pool serialises writers in-process.
Timestamps go to PostgreSQL as ``timestamptz`` and to SQLite as RFC 3339 text with
milliseconds and a ``Z`` (the same text ``strftime('%Y-%m-%dT%H:%M:%fZ')`` produces, so
comparisons in SQL work).
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Literal, Protocol

from eventsourcing.postgres import PostgresDatastore
from eventsourcing.sqlite import SQLiteDatastore

from application.read_model import rfc3339

Row = Mapping[str, Any]
Params = Mapping[str, Any] | None

_NAMED = re.compile(r"%\((\w+)\)s")


class SqlCursor(Protocol):
    """The part of a DB-API cursor we use, with named parameters."""

    def execute(self, sql: str, params: Params = None) -> None:
        """Run one statement."""

    def executemany(self, sql: str, params: Iterable[Mapping[str, Any]]) -> None:
        """Run one statement for each set of parameters (pipelined on PostgreSQL)."""

    def fetchone(self) -> Row | None:
        """The next row, or None."""

    def fetchall(self) -> list[Row]:
        """All remaining rows."""


def advisory_key(name: str) -> int:
    """A PostgreSQL advisory lock key (signed 64-bit) for a lock's name."""
    digest = hashlib.blake2b(name.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _adapt(params: Mapping[str, Any] | None) -> dict[str, Any]:
    # SQLite tables store a time as the wire does: RFC 3339, UTC, milliseconds, ``Z``.
    return {k: rfc3339(v) if isinstance(v, datetime) else v for k, v in (params or {}).items()}


class _SqliteCursor:
    def __init__(self, cursor: Any) -> None:
        self._cursor = cursor

    def execute(self, sql: str, params: Params = None) -> None:
        self._cursor.execute(_NAMED.sub(r":\1", sql), _adapt(params))

    def executemany(self, sql: str, params: Iterable[Mapping[str, Any]]) -> None:
        self._cursor.executemany(_NAMED.sub(r":\1", sql), [_adapt(p) for p in params])

    def fetchone(self) -> Row | None:
        row = self._cursor.fetchone()
        return None if row is None else dict(row)

    def fetchall(self) -> list[Row]:
        return [dict(r) for r in self._cursor.fetchall()]


def select_in(
    cursor: SqlCursor,
    select: str,
    column: str,
    keys: Iterable[str],
    chunk: int = 500,
    params: Mapping[str, Any] | None = None,
    suffix: str = "",
) -> list[Row]:
    """Rows of ``select … WHERE column IN (keys) suffix``, in chunks small enough for any
    driver, keys in sorted order (so rows locked by a ``FOR UPDATE`` suffix are taken in one
    order); ``params`` are the select's own parameters."""
    ordered = sorted(set(keys))
    rows: list[Row] = []
    for start in range(0, len(ordered), chunk):
        part = ordered[start : start + chunk]
        values = {**(params or {}), **{f"k{i}": key for i, key in enumerate(part)}}
        marks = ", ".join(f"%(k{i})s" for i in range(len(part)))
        cursor.execute(f"{select} WHERE {column} IN ({marks}){suffix}", values)
        rows.extend(cursor.fetchall())
    return rows


def bulk_insert(
    cursor: SqlCursor, dialect: str, table: str, columns: Sequence[str], rows: Sequence[Row]
) -> None:
    """Insert many new rows: COPY on PostgreSQL, one prepared INSERT on SQLite."""
    if not rows:
        return
    if dialect == "postgres":
        raw: Any = cursor
        with raw.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row([row.get(c) for c in columns])
        return
    cursor.executemany(
        f"INSERT INTO {table} ({', '.join(columns)}) "
        f"VALUES ({', '.join(f'%({c})s' for c in columns)})",
        [{c: row.get(c) for c in columns} for row in rows],
    )


def _arrays(types: Mapping[str, str], rows: Sequence[Row]) -> tuple[str, dict[str, Any]]:
    """The ``unnest`` arguments for ``rows`` (one array per column) and their parameters.
    Binary parameters: a text array in text format is escaped element by element in Python
    (eight times slower for JSON bodies than binary, and slower than executemany)."""
    arrays = ", ".join(f"%({name})b::{kind}[]" for name, kind in types.items())
    return arrays, {name: [row[name] for row in rows] for name in types}


def insert_rows(
    cursor: SqlCursor,
    dialect: str,
    table: str,
    types: Mapping[str, str],
    rows: Sequence[Row],
    tail: str = "",
) -> None:
    """``INSERT INTO table (columns) … tail`` for many rows, each a mapping of the columns
    ``types`` names (with their PostgreSQL types) to values; ``tail`` is e.g. an
    ``ON CONFLICT`` clause. On PostgreSQL one statement over ``unnest``ed arrays: one round
    trip, one plan and one execution however many rows (``executemany`` pipelines a bind and
    an execution per row, and its per-row work in the driver was most of a webhook batch's
    cost). On SQLite, in-process, ``executemany`` of the one-row form is already that."""
    if not rows:
        return
    names = list(types)
    head = f"INSERT INTO {table} ({', '.join(names)})"
    if dialect == "postgres":
        arrays, params = _arrays(types, rows)
        cursor.execute(f"{head} SELECT * FROM unnest({arrays}){tail}", params)
        return
    marks = ", ".join(f"%({n})s" for n in names)
    cursor.executemany(f"{head} VALUES ({marks}){tail}", rows)


def update_rows(
    cursor: SqlCursor,
    dialect: str,
    table: str,
    types: Mapping[str, str],
    assignments: str,
    where: str,
    rows: Sequence[Row],
) -> None:
    """``UPDATE table SET assignments WHERE where`` for each of many rows, as one statement
    on PostgreSQL (like :func:`insert_rows`). In ``assignments`` and ``where``, ``{name}``
    stands for a row's value; the names must differ from the table's columns."""
    if not rows:
        return
    names = list(types)
    if dialect == "postgres":
        values = {n: f"v.{n}" for n in names}
        arrays, params = _arrays(types, rows)
        cursor.execute(
            f"UPDATE {table} SET {assignments.format_map(values)} FROM unnest({arrays}) "
            f"AS v({', '.join(names)}) WHERE {where.format_map(values)}",
            params,
        )
        return
    marks = {n: f"%({n})s" for n in names}
    cursor.executemany(
        f"UPDATE {table} SET {assignments.format_map(marks)} WHERE {where.format_map(marks)}",
        rows,
    )


class LocalReads:
    """Single read statements on a SQLite file, on a connection of the calling thread's own.

    For the reads an event loop makes itself (see ``SessionReadModel``): a statement on a
    local file in WAL mode takes tens of microseconds and never waits for a writer, less
    than handing it to a thread costs, and the pool's connections could all be out. Each
    thread gets its own connection (SQLite's are not shared across threads), made on first
    use, closed by :meth:`close`. A read that would wait (WAL being reset or recovered)
    fails at once with ``sqlite3.OperationalError`` instead; its caller then reads the usual
    way, from a thread.
    """

    def __init__(self, db_name: str) -> None:
        self._db_name = db_name
        self._local = threading.local()
        self._opened: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def fetch_one(self, sql: str, params: Params = None) -> Row | None:
        """The first row of one statement (every row is read, so the statement's read
        transaction ends here and never holds a WAL checkpoint back)."""
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._connect()
        rows = connection.execute(_NAMED.sub(r":\1", sql), _adapt(params)).fetchall()
        return dict(rows[0]) if rows else None

    def close(self) -> None:
        """Close every thread's connection."""
        with self._lock:
            opened, self._opened = self._opened, []
        for connection in opened:
            connection.close()

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(
            self._db_name, uri=True, isolation_level=None, timeout=0, check_same_thread=False
        )
        connection.row_factory = sqlite3.Row
        connection.execute("PRAGMA query_only = ON")
        self._local.connection = connection
        with self._lock:
            self._opened.append(connection)
        return connection


class SqlDatabase:
    """SQL on the same database (and pool) as an eventsourcing application's recorder."""

    def __init__(self, datastore: SQLiteDatastore | PostgresDatastore) -> None:
        self.datastore = datastore
        self.dialect: Literal["sqlite", "postgres"] = (
            "postgres" if isinstance(datastore, PostgresDatastore) else "sqlite"
        )
        self._prefix = f"{datastore.schema}." if isinstance(datastore, PostgresDatastore) else ""

    def table(self, name: str) -> str:
        """The qualified name of one of our tables."""
        return f"{self._prefix}{name}"

    def local_reads(self) -> LocalReads | None:
        """:class:`LocalReads` of this database if it is a SQLite file; else None."""
        if not isinstance(self.datastore, SQLiteDatastore):
            return None
        pool = self.datastore.pool
        if pool.is_sqlite_memory_mode:
            return None
        return LocalReads(pool.db_name)

    def for_update(self) -> str:
        """The row-locking suffix of a SELECT (SQLite locks the whole database instead)."""
        return " FOR UPDATE" if self.dialect == "postgres" else ""

    @contextmanager
    def transaction(self, *, commit: bool = True, immediate: bool = False) -> Iterator[SqlCursor]:
        """A cursor inside one transaction, committed at the end unless ``commit`` is false.

        ``immediate`` takes SQLite's write lock at the start: a transaction that reads and
        then writes must, or another process's commit in between makes its write fail.
        """
        if immediate and isinstance(self.datastore, SQLiteDatastore):
            with self._sqlite_immediate() as cursor:
                yield cursor
            return
        with self.datastore.transaction(commit=commit) as cursor:
            wrapped: Any = cursor if self.dialect == "postgres" else _SqliteCursor(cursor)
            yield wrapped

    @contextmanager
    def read(self) -> Iterator[SqlCursor]:
        """A cursor for one read statement that needs no transaction of its own: on
        PostgreSQL it runs in autocommit (one round trip instead of BEGIN, SELECT and
        ROLLBACK). Statements needing one snapshot together use :meth:`transaction`."""
        if isinstance(self.datastore, PostgresDatastore):
            with self.datastore.get_connection() as connection, connection.cursor() as cursor:
                wrapped: Any = cursor
                yield wrapped
            return
        with self.transaction(commit=False) as cursor:
            yield cursor

    @contextmanager
    def _sqlite_immediate(self) -> Iterator[SqlCursor]:
        assert isinstance(self.datastore, SQLiteDatastore)
        with self.datastore.get_connection(commit=True) as connection:
            raw = connection._sqlite_conn  # the library offers no BEGIN IMMEDIATE
            raw.execute("BEGIN IMMEDIATE")
            try:
                yield _SqliteCursor(raw.cursor())
            except BaseException:
                raw.rollback()
                raise
            raw.commit()

    def execute_script(self, statements: Sequence[str]) -> None:
        """Run DDL statements in one transaction."""
        with self.transaction() as cursor:
            for statement in statements:
                cursor.execute(statement)

    def close(self) -> None:
        """Close the pool (only for databases we opened ourselves)."""
        self.datastore.close()
