"""Sealing each appended event into the audit chains, atomically: what both stores'
recorders share, and the SQLite recorder (the PostgreSQL one is in
:mod:`infrastructure.audit.recorders`).

They extend the library's recorders only at the point where an append has its positions
and is still inside its transaction (after PostgreSQL's table lock, inside SQLite's write
transaction), so the seals are written, or rolled back, with the events.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from typing import Any

from eventsourcing.persistence import IntegrityError, OperationalError, StoredEvent
from eventsourcing.sqlite import SQLiteConnection, SQLiteCursor, SQLiteTransaction

from application.ports import Guard, StaleGuard
from infrastructure.audit.chain import CHAIN_TABLE, GENESIS, Chain, Seal, originator_key
from infrastructure.audit.group_commit import Append, GroupCommit, library_path_unguarded
from infrastructure.migrations import migrate
from infrastructure.sql import SqlDatabase
from infrastructure.sqlite_subscription import SubscribableSQLiteApplicationRecorder


class Sealing:
    """What both recorders share: the chain that computes seals, and creating our tables
    (see :mod:`infrastructure.migrations`) before the library's."""

    chain = Chain()
    datastore: Any

    def create_table(self) -> None:
        """Our tables (the seals among them) first, then the library's."""
        migrate(SqlDatabase(self.datastore), "store")
        super().create_table()  # type: ignore[misc]

    def _seal_from(
        self,
        events: Sequence[StoredEvent],
        positions: Sequence[int],
        heads: dict[str | None, str | None],
        digests: Sequence[bytes] | None = None,
    ) -> list[Seal]:
        """Seals, in log order, continuing from heads as the chain table spells them (hex,
        or None; the global head under the key None)."""
        order = sorted(range(len(events)), key=positions.__getitem__)
        global_head = heads.get(None)
        return self.chain.seal(
            [events[i] for i in order],
            [positions[i] for i in order],
            bytes.fromhex(global_head) if global_head else GENESIS,
            {o: bytes.fromhex(h) for o, h in heads.items() if o is not None and h},
            digests=None if digests is None else [digests[i] for i in order],
        )


def seal_row(seal: Seal) -> tuple[object, ...]:
    """A seal as a row of the chain table."""
    return (
        seal.position,
        seal.originator_id,
        seal.originator_version,
        seal.event_hash.hex(),
        seal.session_hash.hex(),
        seal.global_hash.hex(),
    )


class SealingSQLiteApplicationRecorder(Sealing, SubscribableSQLiteApplicationRecorder):
    """SQLite: seals in the same write transaction as the events.

    Appends made at the same time share one transaction and one commit (group commit, as
    on PostgreSQL: :mod:`infrastructure.audit.group_commit`): SQLite commits one writer at a
    time and fsyncs the WAL on each commit, so a commit per append made the fsyncs the
    limit. Each append runs under a savepoint of its own, so one that conflicts (another
    writer took its version) fails alone and the others commit.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.group = GroupCommit(self._commit_batch)

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        """Record events with whatever other appends are waiting, then wake subscribers."""
        guards = library_path_unguarded(stored_events, kwargs)
        if guards is None:
            return super().insert_events(stored_events, **kwargs)
        ids = self.group.submit(stored_events, guards)
        self._wake()
        return ids

    async def insert_events_at_once(
        self, stored_events: Sequence[StoredEvent], guards: Sequence[Guard]
    ) -> Sequence[int]:
        """:meth:`insert_events` (with ``guards``) for a caller on an event loop: it waits
        for the batch that decides its append without holding a thread."""
        ids = await self.group.submit_at_once(stored_events, guards)
        self._wake()
        return ids

    def _commit_batch(self, batch: list[Append]) -> None:
        decided: list[tuple[Append, list[int]]] = []
        with (
            self.datastore.get_connection(commit=True) as connection,
            PolledWriteTransaction(connection) as c,
            c,
        ):
            for append in batch:
                c.execute("SAVEPOINT append")
                try:
                    ids = self._insert_events(c, append.events)
                    if self._stale(c, append):
                        raise StaleGuard("a guard of the append changed meanwhile")
                except (sqlite3.IntegrityError, StaleGuard) as error:
                    c.execute("ROLLBACK TO append")
                    c.execute("RELEASE append")
                    stale = isinstance(error, StaleGuard)
                    append.fail(error if stale else IntegrityError(error))
                    continue
                c.execute("RELEASE append")
                decided.append((append, list(ids or [])))
        for append, ids in decided:  # committed: only now do they have positions
            append.ids = ids

    def _insert_events(
        self, c: SQLiteCursor, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        ids = super()._insert_events(c, stored_events, **kwargs)
        if ids:
            heads = self._read_heads(c, {originator_key(e.originator_id) for e in stored_events})
            seals = self._seal_from(stored_events, ids, heads)
            c.executemany(
                f"INSERT INTO {CHAIN_TABLE} (position, originator_id, originator_version, "
                "event_hash, session_hash, global_hash) VALUES (?, ?, ?, ?, ?, ?)",
                [seal_row(s) for s in seals],
            )
        return ids

    def _stale(self, c: SQLiteCursor, append: Append) -> bool:
        """Whether an aggregate of the append's guards was at another version than named
        before the append (whose own events, just inserted, may continue it)."""
        for originator_id, version in append.guards:
            own = [e.originator_version for e in append.events if e.originator_id == originator_id]
            c.execute(
                f"SELECT MAX(originator_version) AS v FROM {self.events_table_name} "
                "WHERE originator_id = ? AND originator_version < ?",
                (originator_id.hex, min(own, default=2**63 - 1)),
            )
            if c.fetchone()["v"] != version:
                return True
        return False

    @staticmethod
    def _read_heads(c: SQLiteCursor, originators: set[str]) -> dict[str | None, str | None]:
        """The global head (under None) and each originator's, as the table spells them."""
        c.execute(f"SELECT global_hash FROM {CHAIN_TABLE} ORDER BY position DESC LIMIT 1")
        row = c.fetchone()
        heads: dict[str | None, str | None] = {None: row["global_hash"] if row else None}
        for originator in originators:
            c.execute(
                f"SELECT session_hash FROM {CHAIN_TABLE} WHERE originator_id = ? "
                "ORDER BY originator_version DESC LIMIT 1",
                (originator,),
            )
            found = c.fetchone()
            heads[originator] = found["session_hash"] if found else None
        return heads


WRITE_LOCK_POLL_SECONDS = 0.0002


class PolledWriteTransaction(SQLiteTransaction):
    """A write transaction holding SQLite's write lock from its start (BEGIN IMMEDIATE),
    the lock asked for every 0.2 ms rather than through SQLite's busy handler, which sleeps
    1, 2, 5, 10, 15, 20, 25... ms between tries: the projection process holds the lock for
    a few milliseconds at a time, and a batch of appends (every switch waiting) slept on
    past its release. Like the busy handler, it gives up after the connection's busy timeout
    (the store's lock timeout: "database is locked", answered as the store being
    unavailable)."""

    def __init__(self, connection: SQLiteConnection) -> None:
        super().__init__(connection, commit=True)

    def __enter__(self) -> SQLiteCursor:
        raw = self.connection._sqlite_conn  # the library offers no BEGIN IMMEDIATE
        busy_timeout = int(raw.execute("PRAGMA busy_timeout").fetchone()[0])  # milliseconds
        raw.execute("PRAGMA busy_timeout = 0")
        try:
            deadline = time.monotonic() + busy_timeout / 1000
            while True:
                try:
                    raw.execute("BEGIN IMMEDIATE")
                    break
                except sqlite3.OperationalError as error:
                    if "locked" not in str(error) or time.monotonic() >= deadline:
                        raise OperationalError(error) from error
                    time.sleep(WRITE_LOCK_POLL_SECONDS)
        finally:
            raw.execute(f"PRAGMA busy_timeout = {busy_timeout}")  # for all else it runs
        return self.connection.cursor()
