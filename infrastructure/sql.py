"""One way to run SQL on either store, over the event store's own connection pools.

Statements are written once with psycopg's ``%(name)s`` placeholders and translated for
SQLite; tables are named through :meth:`SqlDatabase.table` so a PostgreSQL schema applies.
Sharing the event store's pool matters on SQLite, whose pool serialises writers in-process.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Literal, Protocol

from eventsourcing.postgres import PostgresDatastore
from eventsourcing.sqlite import SQLiteDatastore

Row = Mapping[str, Any]
Params = Mapping[str, Any] | None

_NAMED = re.compile(r"%\((\w+)\)s")


class SqlCursor(Protocol):
    """The part of a DB-API cursor we use, with named parameters."""

    def execute(self, sql: str, params: Params = None) -> None:
        """Run one statement."""

    def fetchone(self) -> Row | None:
        """The next row, or None."""

    def fetchall(self) -> list[Row]:
        """All remaining rows."""


class _SqliteCursor:
    def __init__(self, cursor: Any) -> None:
        self._cursor = cursor

    def execute(self, sql: str, params: Params = None) -> None:
        self._cursor.execute(_NAMED.sub(r":\1", sql), dict(params or {}))

    def fetchone(self) -> Row | None:
        row = self._cursor.fetchone()
        return None if row is None else dict(row)

    def fetchall(self) -> list[Row]:
        return [dict(r) for r in self._cursor.fetchall()]


class SqlDatabase:
    """SQL on the same database (and pool) as an eventsourcing application's recorder."""

    def __init__(self, datastore: SQLiteDatastore | PostgresDatastore) -> None:
        self._datastore = datastore
        self.dialect: Literal["sqlite", "postgres"] = (
            "postgres" if isinstance(datastore, PostgresDatastore) else "sqlite"
        )
        self._prefix = f"{datastore.schema}." if isinstance(datastore, PostgresDatastore) else ""

    def table(self, name: str) -> str:
        """The qualified name of one of our tables."""
        return f"{self._prefix}{name}"

    @contextmanager
    def transaction(self, *, commit: bool = True) -> Iterator[SqlCursor]:
        """A cursor inside one transaction, committed at the end unless ``commit`` is false."""
        with self._datastore.transaction(commit=commit) as cursor:
            wrapped: Any = cursor if self.dialect == "postgres" else _SqliteCursor(cursor)
            yield wrapped

    def execute_script(self, statements: Sequence[str]) -> None:
        """Run DDL statements in one transaction."""
        with self.transaction() as cursor:
            for statement in statements:
                cursor.execute(statement)
