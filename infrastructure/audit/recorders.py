"""Application recorders that seal each appended event into the audit chains, atomically.

They extend the library's recorders only at the point where an append has its positions
and is still inside its transaction (after PostgreSQL's table lock, inside SQLite's write
transaction), so the seals are written, or rolled back, with the events.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteCursor
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL

from infrastructure.audit.chain import CHAIN_TABLE, GENESIS, Chain, Seal, originator_key
from infrastructure.sqlite_subscription import SubscribableSQLiteApplicationRecorder


def chain_ddl(table: str, id_type: str) -> list[str]:
    """The seals table and its index."""
    return [
        f"CREATE TABLE IF NOT EXISTS {table} (position {id_type} PRIMARY KEY, "
        "originator_id TEXT NOT NULL, originator_version BIGINT NOT NULL, "
        "event_hash TEXT NOT NULL, session_hash TEXT NOT NULL, global_hash TEXT NOT NULL)",
        f"CREATE INDEX IF NOT EXISTS {table.split('.')[-1]}_originator_idx "
        f"ON {table} (originator_id, originator_version)",
    ]


class Sealing:
    """What both recorders share: read the heads, compute, insert the seals."""

    chain = Chain()

    def _seal(
        self, cursor: Any, table: str, mark: str, events: Sequence[StoredEvent], ids: Sequence[int]
    ) -> None:
        cursor.execute(f"SELECT global_hash FROM {table} ORDER BY position DESC LIMIT 1")
        row = cursor.fetchone()
        head = bytes.fromhex(row["global_hash"]) if row else GENESIS
        heads: dict[str, bytes] = {}
        for originator in {originator_key(e.originator_id) for e in events}:
            cursor.execute(
                f"SELECT session_hash FROM {table} WHERE originator_id = {mark} "
                "ORDER BY originator_version DESC LIMIT 1",
                (originator,),
            )
            found = cursor.fetchone()
            if found:
                heads[originator] = bytes.fromhex(found["session_hash"])
        seals = self.chain.seal(events, ids, head, heads)
        cursor.executemany(
            f"INSERT INTO {table} (position, originator_id, originator_version, event_hash, "
            f"session_hash, global_hash) VALUES ({', '.join([mark] * 6)})",
            [_row(s) for s in seals],
        )


def _row(seal: Seal) -> tuple[object, ...]:
    return (
        seal.position,
        seal.originator_id,
        seal.originator_version,
        seal.event_hash.hex(),
        seal.session_hash.hex(),
        seal.global_hash.hex(),
    )


class SealingSQLiteApplicationRecorder(Sealing, SubscribableSQLiteApplicationRecorder):
    """SQLite: seals in the same write transaction as the events."""

    def construct_create_table_statements(self) -> list[str]:
        """The library's tables, plus the seals."""
        return [*super().construct_create_table_statements(), *chain_ddl(CHAIN_TABLE, "INTEGER")]

    def _insert_events(
        self, c: SQLiteCursor, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        ids = super()._insert_events(c, stored_events, **kwargs)
        if ids:
            self._seal(c, CHAIN_TABLE, "?", stored_events, ids)
        return ids


class SealingPostgresApplicationRecorder(Sealing, PostgresApplicationRecorder):
    """PostgreSQL: seals after the table lock, inside the append's transaction."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.chain_table = f'"{self.datastore.schema}".{CHAIN_TABLE}'
        statements: list[Any] = [SQL(s) for s in chain_ddl(self.chain_table, "BIGINT")]
        self.sql_create_statements.extend(statements)

    def _fetch_ids_after_insert_events(
        self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        ids = super()._fetch_ids_after_insert_events(curs, stored_events, **kwargs)
        if ids:
            self._seal(curs, self.chain_table, "%s", stored_events, ids)
        return ids
