"""Where the audit reads history: the primary's event store, or a streaming replica's.

On a cluster (``SESSION_LEDGER_READ_DATABASE_URL`` set, with the views in the event store's
own database, so a replica holds the events and seals too), a session's events, its past
states and the verified chain are read from a replica, which keeps that load (a verify reads
everything) off the primary. An auditor still sees everything written before the question:
the replica is read once it has replayed up to the primary's last position at that moment,
within the replica wait; otherwise, or when no replica answers, the primary is.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from eventsourcing.persistence import ApplicationRecorder, EventStore
from eventsourcing.postgres import PostgresAggregateRecorder, PostgresApplicationRecorder

from application.sessions import SessionsApp
from infrastructure.projections.replica_reads import ReplicaReads
from infrastructure.sql import SqlDatabase


@dataclass(frozen=True)
class HistorySource:
    """One database's events, seals and snapshots, read the way the application reads them."""

    name: str
    recorder: ApplicationRecorder
    mapper: Any
    events: EventStore[Any]
    snapshots: EventStore[Any] | None
    db: SqlDatabase


def primary_source(sessions: SessionsApp, db: SqlDatabase) -> HistorySource:
    """The application's own event store."""
    return HistorySource(
        sessions.name, sessions.recorder, sessions.mapper, sessions.events, sessions.snapshots, db
    )


def replica_source(sessions: SessionsApp, replica: SqlDatabase) -> HistorySource:
    """The same tables on a replica, through the library's read-only-used recorders."""
    datastore: Any = replica.datastore
    primary: Any = sessions.recorder
    recorder = PostgresApplicationRecorder(datastore, events_table_name=primary.events_table_name)
    snapshots = None
    if sessions.snapshots is not None:
        table: Any = sessions.snapshots.recorder
        snapshot_recorder = PostgresAggregateRecorder(
            datastore, events_table_name=table.events_table_name
        )
        snapshots = EventStore(sessions.mapper, snapshot_recorder)
    return HistorySource(
        sessions.name,
        recorder,
        sessions.mapper,
        EventStore(sessions.mapper, recorder),
        snapshots,
        replica,
    )


class HistorySources:
    """Chooses, per question, the replica when it has caught up, else the primary."""

    def __init__(
        self,
        sessions: SessionsApp,
        db: SqlDatabase,
        views: SqlDatabase,
        replica: ReplicaReads | None,
    ) -> None:
        self.primary = primary_source(sessions, db)
        self._sessions = sessions
        self._replica: ReplicaReads | None = None
        if (
            replica is not None
            and views is db  # the replica's database is the event store's
            and db.dialect == replica.replica.dialect == "postgres"
        ):
            self._replica = replica
        self._on_replica: HistorySource | None = None  # made once a replica first answers
        self._lock = threading.Lock()

    def current(self) -> HistorySource:
        """Where to read a history that must include every write made before now."""
        replica = self._replica
        if replica is None:
            return self.primary
        needed = self.primary.recorder.max_notification_id() or 0

        def replayed(_: SqlDatabase) -> int:
            return self._replica_source(replica).recorder.max_notification_id() or 0

        return (
            self._replica_source(replica) if replica.caught_up(replayed, needed) else self.primary
        )

    def _replica_source(self, replica: ReplicaReads) -> HistorySource:
        with self._lock:
            if self._on_replica is None:
                self._on_replica = replica_source(self._sessions, replica.replica)
            return self._on_replica
