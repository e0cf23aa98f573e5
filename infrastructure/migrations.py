"""Versioned schema migrations of our tables, in one ordered list, applied at start-up.

``schema_version`` records each migration that ran (version, description, when). All
pending migrations run in one transaction, under PostgreSQL's advisory lock or SQLite's
write lock, so processes starting together apply each exactly once and a failure leaves
the schema as it was. To change a table, append a :class:`Migration` with the next
version; never edit one that has shipped. eventsourcing creates and migrates its own
tables (events, snapshots, tracking); projection tables are versioned by the projection
engine, which rebuilds them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from infrastructure.schema_baseline import store_baseline, views_baseline
from infrastructure.sql import SqlCursor, SqlDatabase, advisory_key

# "store": the event store's database; "views": where projections and webhooks live (the
# same database unless SESSION_LEDGER_VIEWS_DATABASE_URL names another).
Database = Literal["store", "views"]


@dataclass(frozen=True)
class Migration:
    """One step of the schema of one database: its statements for that database's dialect
    (``db.dialect``) and table names (``db.table``)."""

    version: int
    database: Database
    description: str
    statements: Callable[[SqlDatabase], Sequence[str]]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "store", "tables of the releases before versioned migrations", store_baseline),
    Migration(2, "views", "tables of the releases before versioned migrations", views_baseline),
)

VERSION_TABLE = "schema_version"


def migrate(
    db: SqlDatabase, database: Database, migrations: Sequence[Migration] = MIGRATIONS
) -> list[int]:
    """Apply the migrations of ``database`` that ``db`` has not had yet, in order; return
    the versions applied. Versions are unique across databases, so one database can serve
    as both."""
    versions = [m.version for m in migrations]
    if versions != sorted(set(versions)):
        msg = f"migration versions must increase: {versions}"
        raise ValueError(msg)
    table = db.table(VERSION_TABLE)
    applied: list[int] = []
    with db.transaction(immediate=True) as cursor:
        if db.dialect == "postgres":
            # One key per schema: another schema migrates independently.
            key = advisory_key(f"session-ledger migrations {table}")
            cursor.execute("SELECT pg_advisory_xact_lock(%(key)s)", {"key": key})
        cursor.execute(
            f"CREATE TABLE IF NOT EXISTS {table} (version INTEGER PRIMARY KEY, "
            "description TEXT NOT NULL, applied_at TEXT NOT NULL)"
        )
        done = _applied(cursor, table)
        for migration in migrations:
            if migration.database != database or migration.version in done:
                continue
            for statement in migration.statements(db):
                cursor.execute(statement)
            cursor.execute(
                f"INSERT INTO {table} (version, description, applied_at) "
                "VALUES (%(version)s, %(description)s, %(at)s)",
                {
                    "version": migration.version,
                    "description": migration.description,
                    "at": datetime.now(UTC).isoformat(),
                },
            )
            applied.append(migration.version)
    return applied


def schema_versions(db: SqlDatabase) -> list[int]:
    """The versions recorded as applied, in order (after :func:`migrate` has run)."""
    with db.transaction(commit=False) as cursor:
        return sorted(_applied(cursor, db.table(VERSION_TABLE)))


def _applied(cursor: SqlCursor, table: str) -> set[int]:
    cursor.execute(f"SELECT version FROM {table}")
    return {int(row["version"]) for row in cursor.fetchall()}
