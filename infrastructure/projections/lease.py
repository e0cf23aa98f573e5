"""Which process's projection worker does the work, when several serve the same store.

``session-ledger serve --workers N`` starts N processes, and each would otherwise run a
projection worker that wakes on every new event and competes for the same projection rows.
The projections stay correct either way (each batch commits its rows and its position
under a row lock), so this is only about not doing the work N times: one worker holds the
lease and works; the others try again every few seconds and take over if it goes away.

- PostgreSQL: a session-level advisory lock, keyed by database schema, held on a
  connection of its own (the server frees it when that connection or process dies);
- SQLite: an exclusive ``flock`` on ``<database file>.projections.lock`` (freed by the
  kernel when the process dies);
- in memory: nothing to share, the lease is always held.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from typing import IO, Any

import psycopg
from eventsourcing.postgres import PostgresDatastore
from eventsourcing.sqlite import SQLiteDatastore

from infrastructure.sql import advisory_key

logger = logging.getLogger(__name__)

CHECK_SECONDS = 1.0


class WorkerLease:
    """An exclusive, crash-safe lease on running the projections of one store."""

    def __init__(self, datastore: Any, purpose: str = "projections") -> None:
        self._datastore = datastore
        self._purpose = purpose  # another purpose (webhooks) is another, independent lease
        self._connection: psycopg.Connection[Any] | None = None
        self._file: IO[bytes] | None = None
        self._checked = 0.0
        self.held = False

    def acquire(self) -> bool:
        """Take the lease if nobody holds it; True while this worker holds it."""
        if self.held:
            return True
        store = self._datastore
        if isinstance(store, PostgresDatastore):
            self.held = self._acquire_postgres(store)
        elif isinstance(store, SQLiteDatastore) and not store.pool.is_sqlite_memory_mode:
            self.held = self._acquire_file(f"{store.pool.db_name}.{self._purpose}.lock")
        else:
            self.held = True
        return self.held

    def still_held(self) -> bool:
        """False if the lease was lost: its PostgreSQL connection is checked with a round
        trip at most every ``CHECK_SECONDS`` (psycopg notices a dead connection only when
        it is used), and then the lock is released for others."""
        connection = self._connection
        if connection is not None and self.held:
            now = time.monotonic()
            if now - self._checked >= CHECK_SECONDS:
                self._checked = now
                try:
                    connection.execute("SELECT 1")
                except psycopg.Error:
                    logger.warning("projection worker lease lost (its connection broke)")
                    self.release()
        return self.held

    def release(self) -> None:
        """Give the lease up (closing its connection or file frees it)."""
        held, self.held = self.held, False
        if self._connection is not None:
            with contextlib.suppress(psycopg.Error):
                if held and not self._connection.closed:
                    # Unlock before closing: a closed connection's server process frees its
                    # locks only when it exits, a moment later, so the next worker would
                    # find the lease still taken.
                    self._connection.execute("SELECT pg_advisory_unlock_all()")
                self._connection.close()
            self._connection = None
        if self._file is not None:
            self._file.close()
            self._file = None

    def _acquire_postgres(self, store: PostgresDatastore) -> bool:
        if self._connection is None or self._connection.closed:
            raw = store.pool.kwargs
            given: dict[str, Any] = (raw() if callable(raw) else raw) or {}
            params = {k: v for k, v in given.items() if k != "row_factory" and v}
            self._connection = psycopg.connect(**params, autocommit=True)
        key = advisory_key(f"session-ledger {self._purpose} {store.schema}")
        row = self._connection.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
        return bool(row and row[0])

    def _acquire_file(self, path: str) -> bool:
        if self._file is None:
            self._file = open(path, "ab")  # noqa: SIM115 - held open while the lease is
            with contextlib.suppress(OSError):
                os.chmod(path, 0o600)
        try:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True
