"""Projections of the event log into SQL tables: batched, exactly-once, rebuildable.

Each projection keeps one row in ``projection_state``: the *generation* of its tables that is
live and the *position* (notification id) it has processed up to. A batch of events and the
new position are written in one transaction, after locking that row, so a crash at any point
leaves the tables and the position in agreement, and concurrent processors (the request that
just wrote, the background worker, another process) never apply an event twice. On SQLite,
whose one write lock the serving process's appends wait for, a projection may work a batch's
rows out first in a read transaction (``Projector.prepare``); the write transaction writes
them only if the locked position is still the one they were worked out from.

A rebuild fills generation N+1 (see :mod:`infrastructure.projections.projection`) from the
first event while N keeps serving, then, in one transaction, catches up the last events and
repoints the views.

The library's ProjectionRunner commits one event per transaction and needs a subscription the
SQLite recorder lacks; this engine batches (hundreds of events per transaction) and only uses
subscriptions to wake up (see :mod:`infrastructure.projections.worker`).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from eventsourcing.application import Application
from eventsourcing.persistence import Notification

from infrastructure.migrations import migrate
from infrastructure.projections.event_log import Decoded, EventLog
from infrastructure.projections.projection import Projection, ProjectionStatus, Write
from infrastructure.sql import SqlCursor, SqlDatabase

BATCH_SIZE = 500  # live catch-up: small, so a request never waits on a long transaction
REBUILD_BATCH_SIZE = (
    20_000  # rebuilds: few, large transactions (each session encoded once per batch)
)
REBUILD_SUFFIX = "#rebuild"
STATE_TABLE = "projection_state"  # a projection's live generation and position, by name

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Prepared:
    """A projection's writes for a batch, worked out from ``position`` in ``generation``
    (see :meth:`Projector.prepare`); writing them takes the position to ``reaches``."""

    generation: int
    position: int
    reaches: int
    work: Any

    def still(self, generation: int, position: int) -> bool:
        """Whether the live generation still stands where the work was done from."""
        return (generation, position) == (self.generation, self.position)


class Projector:
    """Runs one projection against one application's event log."""

    def __init__(
        self,
        app: Application[Any],
        db: SqlDatabase,
        projection: Projection,
        batch_size: int = BATCH_SIZE,
    ) -> None:
        self.app = app
        self.db = db
        self.projection = projection
        self.batch_size = batch_size
        self._state = db.table(STATE_TABLE)
        self.log = EventLog(app, db, batch_size)

    @property
    def name(self) -> str:
        """The projection's name."""
        return self.projection.name

    # Set-up -----------------------------------------------------------------------------

    def ensure(self) -> None:
        """Migrate the views database (the state table is a migration's), then create the
        live generation's tables and the views, if missing."""
        migrate(self.db, "views")
        with self.db.transaction(immediate=True) as cursor:
            if self.db.dialect == "postgres":
                # Concurrent CREATE … IF NOT EXISTS can still collide in PostgreSQL's catalog.
                cursor.execute(
                    "SELECT pg_advisory_xact_lock(%(key)s)", {"key": _lock_key(self._state)}
                )
            cursor.execute(
                f"INSERT INTO {self._state} (name, generation, position, version) "
                "VALUES (%(name)s, 1, 0, %(version)s) ON CONFLICT (name) DO NOTHING",
                {"name": self.name, "version": self.projection.version},
            )
            generation, _ = self._read_state(cursor, self.name)
            outdated = self._outdated(cursor)
            if not outdated:
                for statement in self.projection.create_statements(self.db, generation):
                    cursor.execute(statement)
                self._point_views(cursor, generation, replace=False)
        if outdated:
            self._rebuild_outdated()

    def _outdated(self, cursor: SqlCursor) -> bool:
        """True if the live generation was built by another version of the projection."""
        cursor.execute(
            f"SELECT version FROM {self._state} WHERE name = %(name)s", {"name": self.name}
        )
        row = cursor.fetchone()
        return row is None or int(row["version"]) != self.projection.version

    def _rebuild_outdated(self) -> None:
        """Rebuild once, even when several processes start at the same time."""
        if self.db.dialect != "postgres":
            self.rebuild()
            return
        datastore: Any = self.db.datastore
        with datastore.get_connection() as connection:
            key = _lock_key(self._state + ":rebuild:" + self.name)
            connection.execute("SELECT pg_advisory_lock(%s)", (key,))
            try:
                with self.db.transaction(commit=False) as cursor:
                    still = self._outdated(cursor)
                if still:
                    self.rebuild()
            finally:
                connection.execute("SELECT pg_advisory_unlock(%s)", (key,))

    def _point_views(
        self, cursor: SqlCursor, generation: int, *, replace: bool, reshape: bool = False
    ) -> None:
        views = self.projection.view_statements(self.db, generation)
        if reshape:
            # New columns: PostgreSQL cannot replace a view with a different shape.
            for name, _ in reversed(views):
                cursor.execute(f"DROP VIEW IF EXISTS {self.db.table(name)}")
        for name, select in views:
            view = self.db.table(name)
            if self.db.dialect == "postgres":
                # Same columns in every generation, so the view keeps its identity and
                # queries running against it are not broken by the switch.
                cursor.execute(f"CREATE OR REPLACE VIEW {view} AS {select}")
            else:
                if replace:
                    cursor.execute(f"DROP VIEW IF EXISTS {view}")
                cursor.execute(f"CREATE VIEW IF NOT EXISTS {view} AS {select}")

    def _read_state(self, cursor: SqlCursor, name: str, lock: bool = False) -> tuple[int, int]:
        cursor.execute(
            f"SELECT generation, position FROM {self._state} WHERE name = %(name)s"
            + (self.db.for_update() if lock else ""),
            {"name": name},
        )
        row = cursor.fetchone()
        if row is None:
            raise LookupError(name)
        return int(row["generation"]), int(row["position"])

    # Processing -------------------------------------------------------------------------

    def position(self) -> int:
        """The last position processed into the live generation."""
        with self.db.read() as cursor:
            return self._read_state(cursor, self.name)[1]

    def catch_up(self, until: int | None = None) -> int:
        """Process events into the live generation until ``until`` (or the head) is reached."""
        return self._catch_up(self.name, until)

    def apply_within(
        self,
        cursor: SqlCursor,
        notifications: Sequence[Notification],
        decoded: Decoded,
        prepared: Prepared | None = None,
    ) -> int:
        """Apply the batch's events beyond this projection's position in the caller's
        transaction (which commits them with the new position); the position reached.
        With ``prepared`` (see :meth:`prepare`), its rows are written if the position is
        still the one they were worked out from; else the batch is applied afresh."""
        return self._apply(self.name, notifications, cursor, decoded=decoded, prepared=prepared)

    def prepare(self, notifications: Sequence[Notification], decoded: Decoded) -> Prepared | None:
        """The live generation's writes for the batch, worked out in a read transaction
        before the write transaction that will write them. SQLite only: it has one write
        lock for the whole database, which the serving process's appends wait for, so the
        reading, folding and encoding are done before taking it. None where the projection
        does not prepare, or the batch holds nothing new for it."""
        if self.db.dialect != "sqlite" or not self.projection.prepares:
            return None
        with self.db.transaction(commit=False) as cursor:  # one snapshot: position and rows
            generation, position = self._read_state(cursor, self.name)
            fresh = [n for n in notifications if n.id > position]
            if not fresh:
                return None
            batch = self.log.decode(fresh, decoded)
            work = self.projection.prepare(Write(cursor, self.db, generation, {}), batch)
        if work is None:
            return None
        return Prepared(generation, position, fresh[-1].id, work)

    def _catch_up(
        self,
        state_name: str,
        until: int | None,
        progress: Progress | None = None,
        memo: dict[str, Any] | None = None,
    ) -> int:
        with self.db.read() as cursor:
            position = self._read_state(cursor, state_name)[1]
        head = until
        limit = REBUILD_BATCH_SIZE if memo is not None else self.batch_size
        while until is None or position < until:
            notifications = self.log.read(position, limit)
            if not notifications:
                break
            position = self._apply(state_name, notifications, memo=memo)
            if progress is not None:
                progress(position, head or position)
            if len(notifications) < limit:
                break  # that read reached the head; positions are issued in commit order
        return position

    def _apply(
        self,
        state_name: str,
        notifications: Sequence[Notification],
        cursor: SqlCursor | None = None,
        memo: dict[str, Any] | None = None,
        decoded: Decoded | None = None,
        prepared: Prepared | None = None,
    ) -> int:
        """Apply what the batch holds beyond the locked position; return the new position."""
        if cursor is None:
            with self.db.transaction(immediate=True) as own:
                return self._apply(state_name, notifications, own, memo)
        generation, position = self._read_state(cursor, state_name, lock=True)
        if prepared is not None and prepared.still(generation, position):
            # Nothing wrote this generation since the rows were worked out: its position
            # moves with every write, under this lock.
            write = Write(cursor, self.db, generation, {})
            self.projection.write_prepared(write, prepared.work)
            return self._advance(cursor, state_name, prepared.reaches)
        fresh = [n for n in notifications if n.id > position]
        if not fresh:
            return position
        batch = self.log.decode(fresh, decoded)
        memo = {} if memo is None else memo
        self.projection.apply(Write(cursor, self.db, generation, memo), batch)
        return self._advance(cursor, state_name, fresh[-1].id)

    def _advance(self, cursor: SqlCursor, state_name: str, position: int) -> int:
        cursor.execute(
            f"UPDATE {self._state} SET position = %(position)s WHERE name = %(name)s",
            {"position": position, "name": state_name},
        )
        return position

    # Rebuild ----------------------------------------------------------------------------

    def rebuild(self, progress: Progress | None = None) -> int:
        """Project every event into a new generation, then make it live; return its position."""
        rebuild_name = self.name + REBUILD_SUFFIX
        with self.db.transaction(immediate=True) as cursor:
            live_generation, _ = self._read_state(cursor, self.name)
            outdated = self._outdated(cursor)
            generation = live_generation + 1
            self._drop_generation(cursor, generation)  # leftovers of an interrupted rebuild
            for statement in self.projection.create_statements(self.db, generation):
                cursor.execute(statement)
            cursor.execute(
                f"DELETE FROM {self._state} WHERE name = %(name)s", {"name": rebuild_name}
            )
            cursor.execute(
                f"INSERT INTO {self._state} (name, generation, position) "
                "VALUES (%(name)s, %(g)s, 0)",
                {"name": rebuild_name, "g": generation},
            )
        head = self.app.recorder.max_notification_id() or 0
        # The new generation starts empty: what the memo does not hold is not stored either.
        memo: dict[str, Any] = {"defer": True, "complete": True}
        self._catch_up(rebuild_name, head, progress, memo)
        with self.db.transaction(immediate=True) as cursor:
            self._read_state(cursor, self.name, lock=True)  # hold off live catch-ups
            _, position = self._read_state(cursor, rebuild_name, lock=True)
            while notifications := self.log.read_within(cursor, position):
                position = self._apply(rebuild_name, notifications, cursor, memo)
            self.projection.flush(Write(cursor, self.db, generation, memo))
            cursor.execute(
                f"UPDATE {self._state} SET generation = %(g)s, position = %(p)s, "
                "version = %(v)s WHERE name = %(name)s",
                {"g": generation, "p": position, "name": self.name, "v": self.projection.version},
            )
            cursor.execute(
                f"DELETE FROM {self._state} WHERE name = %(name)s", {"name": rebuild_name}
            )
            self._point_views(cursor, generation, replace=True, reshape=outdated)
        with self.db.transaction() as cursor:
            self._drop_generation(cursor, live_generation)
        if progress is not None:
            progress(position, position)
        return position

    def _drop_generation(self, cursor: SqlCursor, generation: int) -> None:
        for table in self.projection.tables:
            cursor.execute(
                f"DROP TABLE IF EXISTS {self.projection.physical(self.db, table, generation)}"
            )

    # Status -----------------------------------------------------------------------------

    def status(self) -> ProjectionStatus:
        """Generation, position and lag of the live tables."""
        head = self.app.recorder.max_notification_id() or 0
        with self.db.transaction(commit=False) as cursor:
            generation, position = self._read_state(cursor, self.name)
            cursor.execute(
                f"SELECT 1 FROM {self._state} WHERE name = %(name)s",
                {"name": self.name + REBUILD_SUFFIX},
            )
            rebuilding = cursor.fetchone() is not None
        return ProjectionStatus(self.name, generation, position, head, rebuilding)


def _lock_key(name: str) -> int:
    return zlib.crc32(name.encode())
