"""SQLite group-commit batches take the write lock by asking every 0.2 ms, not through
SQLite's busy handler (which sleeps 1, 2, 5, 10... ms between tries): a batch waits while
another connection (the projection process) holds the lock, commits once it is free, and
gives up with "database is locked" after the store's timeout, as before. Either way the
pooled connection keeps its busy timeout for everything else it runs."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from eventsourcing.persistence import OperationalError
from eventsourcing.sqlite import SQLiteDatastore

from infrastructure.audit.sealing import PolledWriteTransaction

TIMEOUT_SECONDS = 2


@pytest.fixture
def store(tmp_path: Path) -> Iterator[tuple[SQLiteDatastore, Path]]:
    path = tmp_path / "lock.db"
    datastore = SQLiteDatastore(str(path), lock_timeout=TIMEOUT_SECONDS)
    with datastore.transaction(commit=True) as cursor:
        cursor.execute("CREATE TABLE t (n INTEGER)")
    yield datastore, path
    datastore.close()


def _holding_the_lock(path: Path) -> sqlite3.Connection:
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    return holder


def _busy_timeout(datastore: SQLiteDatastore) -> int:
    with datastore.get_connection(commit=True) as connection:
        return int(connection._sqlite_conn.execute("PRAGMA busy_timeout").fetchone()[0])


def test_a_batch_waits_for_the_lock_and_commits_once_it_is_free(
    store: tuple[SQLiteDatastore, Path],
) -> None:
    datastore, path = store
    holder = _holding_the_lock(path)
    outcome: list[BaseException | None] = []

    def write() -> None:
        try:
            with (
                datastore.get_connection(commit=True) as connection,
                PolledWriteTransaction(connection) as cursor,
            ):
                cursor.execute("INSERT INTO t VALUES (1)")
            outcome.append(None)
        except BaseException as error:
            outcome.append(error)

    writer = threading.Thread(target=write)
    writer.start()
    writer.join(0.2)
    assert writer.is_alive()  # it cannot commit while the lock is held elsewhere
    holder.execute("ROLLBACK")
    holder.close()
    writer.join(TIMEOUT_SECONDS * 5)

    assert outcome == [None]
    with datastore.transaction(commit=False) as cursor:
        cursor.execute("SELECT n FROM t")
        assert [tuple(row) for row in cursor.fetchall()] == [(1,)]
    assert _busy_timeout(datastore) == TIMEOUT_SECONDS * 1000


def test_a_lock_held_past_the_timeout_is_database_is_locked(
    store: tuple[SQLiteDatastore, Path],
) -> None:
    datastore, path = store
    holder = _holding_the_lock(path)
    try:
        with (
            pytest.raises(OperationalError, match="database is locked"),
            datastore.get_connection(commit=True) as connection,
            PolledWriteTransaction(connection) as cursor,
        ):
            cursor.execute("INSERT INTO t VALUES (2)")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert _busy_timeout(datastore) == TIMEOUT_SECONDS * 1000  # as the pool set it
    with datastore.transaction(commit=False) as cursor:
        cursor.execute("SELECT count(*) FROM t")
        assert cursor.fetchone()[0] == 0
