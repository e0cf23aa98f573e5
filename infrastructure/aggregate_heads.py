"""How far an aggregate's history goes: the version of its last event, in one cheap read.

Checking that a cached aggregate is still current needs only this number. Through the
library's repository, a fast-forward is a transaction of its own (BEGIN, SELECT, ROLLBACK:
three round trips on PostgreSQL) plus the aggregate machinery; here it is one statement in
autocommit when the events are in an SQL database we read, else the recorder's own query.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from eventsourcing.application import Application

from infrastructure.projections.event_log import EventLog
from infrastructure.sql import SqlDatabase


class AggregateHeads:
    """The version of an aggregate's last event (``application.ports.AggregateHeads``)."""

    def __init__(self, app: Application[Any], db: SqlDatabase) -> None:
        self._app = app
        self._db = db
        table = EventLog(app, db, batch_size=1).table_here()
        self._events = db.table(table) if table else None

    def version_of(self, originator_id: UUID) -> int | None:
        """The version of the last event of ``originator_id``, or None if it has none."""
        if self._events is None:
            latest = self._app.recorder.select_events(originator_id, desc=True, limit=1)
            return latest[0].originator_version if latest else None
        key = originator_id if self._db.dialect == "postgres" else originator_id.hex
        with self._db.read() as cursor:
            cursor.execute(
                f"SELECT max(originator_version) AS v FROM {self._events} "
                "WHERE originator_id = %(o)s",
                {"o": key},
            )
            row = cursor.fetchone()
        return None if row is None or row["v"] is None else int(row["v"])
