"""How projections read the event log: batches of notifications after a position, and
their events decoded once per batch."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.persistence import Notification

from infrastructure.projections.projection import ProjectedEvent
from infrastructure.sql import SqlCursor, SqlDatabase

Decoded = dict[int, ProjectedEvent]  # events of a batch by notification id


class EventLog:
    """One application's event log, read in batches for projections in ``db``."""

    def __init__(self, app: Application[Any], db: SqlDatabase, batch_size: int) -> None:
        self.app = app
        self.db = db
        self.batch_size = batch_size

    def table_here(self) -> str | None:
        """The events' table (unqualified) when the events live in ``db`` itself, so one
        statement can read them beside the views; else None."""
        if getattr(self.app.factory, "datastore", None) is not self.db.datastore:
            return None
        table: str | None = getattr(self.app.recorder, "events_table_name", None)
        return table

    def read(self, after: int, limit: int | None = None) -> Sequence[Notification]:
        """The next batch after position ``after``."""
        return self.app.recorder.select_notifications(
            start=after, limit=limit or self.batch_size, inclusive_of_start=False
        )

    def read_within(self, cursor: SqlCursor, after: int) -> Sequence[Notification]:
        """The next batch, read inside the caller's write transaction.

        On SQLite, when the views share the events' database, the pool hands out another
        connection only once this writer is done, and a thread queued for the writer holds
        its fairness slot: so read through this transaction's cursor instead.
        """
        table = self.table_here()
        if self.db.dialect != "sqlite" or table is None:
            return self.read(after)
        cursor.execute(
            "SELECT rowid AS id, originator_id, originator_version, topic, state "
            f"FROM {table} WHERE rowid > %(after)s ORDER BY rowid LIMIT %(limit)s",
            {"after": after, "limit": self.batch_size},
        )
        return [
            Notification(
                id=int(row["id"]),
                originator_id=UUID(row["originator_id"]),
                originator_version=int(row["originator_version"]),
                topic=str(row["topic"]),
                state=bytes(row["state"]),
            )
            for row in cursor.fetchall()
        ]

    def decode(
        self, notifications: Sequence[Notification], decoded: Decoded | None = None
    ) -> list[ProjectedEvent]:
        """The batch's events; ``decoded`` shares them among projectors of one app."""
        to_event = self.app.mapper.to_domain_event
        if decoded is None:
            return [ProjectedEvent(n.id, to_event(n), n) for n in notifications]
        for n in notifications:
            if n.id not in decoded:
                decoded[n.id] = ProjectedEvent(n.id, to_event(n), n)
        return [decoded[n.id] for n in notifications]
