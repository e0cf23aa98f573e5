"""The session read model: each session's state, folded from its events, one row per session.

The row holds the state as the library's snapshot JSON, so the API renders it with the same
code as an aggregate, and a projected session equals the aggregate by construction of the
fold (each event's own ``mutate``), not by a second implementation that could drift.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar
from uuid import UUID

from eventsourcing.domain import Snapshot
from eventsourcing.persistence import Mapper, StoredEvent
from eventsourcing.utils import get_topic

from domain.ids import aggregate_uuid
from domain.session import Session
from infrastructure.projections.engine import ProjectedEvent, Projection
from infrastructure.sql import SqlCursor, SqlDatabase, select_in

_SNAPSHOT_TOPIC = get_topic(Snapshot)


class SessionStateCodec:
    """Session state to and from the JSON text the read model stores."""

    def __init__(self, mapper: Mapper[UUID]) -> None:
        self._mapper = mapper

    def encode(self, session: Session) -> str:
        """The session's state as JSON text; the same state always gives the same text."""
        snapshot = Snapshot.take(session)
        # take() stamps the wall clock; a rebuild must reproduce the row byte for byte.
        stable = Snapshot(
            originator_id=snapshot.originator_id,
            originator_version=snapshot.originator_version,
            timestamp=session.modified_on,
            topic=snapshot.topic,
            state=snapshot.state,
        )
        return self._mapper.to_stored_event(stable).state.decode("utf-8")

    def decode(self, session_id: int, version: int, state: str) -> Session:
        """A Session rebuilt from stored JSON text."""
        stored = StoredEvent(
            originator_id=aggregate_uuid(session_id),
            originator_version=version,
            topic=_SNAPSHOT_TOPIC,
            state=state.encode("utf-8"),
        )
        snapshot: Any = self._mapper.to_domain_event(stored)
        session = snapshot.mutate(None)
        assert isinstance(session, Session)
        return session


class SessionView(Projection):
    """``read_sessions(session_id, version, updated_at, state)``."""

    name: ClassVar[str] = "sessions"
    tables: ClassVar[tuple[str, ...]] = ("read_sessions",)

    def __init__(self, codec: SessionStateCodec) -> None:
        self.codec = codec

    def create_statements(self, db: SqlDatabase, generation: int) -> list[str]:
        """One table keyed by session id."""
        table = self.physical(db, "read_sessions", generation)
        timestamp = "TIMESTAMPTZ" if db.dialect == "postgres" else "TEXT"
        return [
            f"CREATE TABLE IF NOT EXISTS {table} (session_id TEXT PRIMARY KEY, "
            f"version INTEGER NOT NULL, updated_at {timestamp} NOT NULL, state TEXT NOT NULL)"
        ]

    def view_statements(self, db: SqlDatabase, generation: int) -> list[tuple[str, str]]:
        """The stable name readers use."""
        table = self.physical(db, "read_sessions", generation)
        return [("read_sessions", f"SELECT session_id, version, updated_at, state FROM {table}")]

    def apply(
        self, cursor: SqlCursor, db: SqlDatabase, generation: int, batch: Sequence[ProjectedEvent]
    ) -> None:
        """Fold the batch's session events into the touched rows, then write each row once."""
        table = self.physical(db, "read_sessions", generation)
        events = [p.event for p in batch if isinstance(p.event, Session.Event)]
        if not events:
            return
        touched = {e.originator_id.int for e in events}
        sessions = self._load(cursor, table, touched)
        for event in events:
            key = event.originator_id.int
            sessions[key] = event.mutate(sessions.get(key))
        rows = [
            {
                "id": str(key),
                "version": s.version,
                "at": s.modified_on,
                "state": self.codec.encode(s),
            }
            for key, s in sessions.items()
            if s is not None
        ]
        cursor.executemany(
            f"INSERT INTO {table} (session_id, version, updated_at, state) "
            "VALUES (%(id)s, %(version)s, %(at)s, %(state)s) "
            "ON CONFLICT (session_id) DO UPDATE SET version = excluded.version, "
            "updated_at = excluded.updated_at, state = excluded.state",
            rows,
        )

    def _load(self, cursor: SqlCursor, table: str, keys: set[int]) -> dict[int, Session | None]:
        select = f"SELECT session_id, version, state FROM {table}"
        found: dict[int, Session | None] = {}
        for row in select_in(cursor, select, "session_id", (str(k) for k in keys)):
            session_id = int(row["session_id"])
            found[session_id] = self.codec.decode(session_id, int(row["version"]), row["state"])
        return found


class SessionReadModel:
    """Queries of the session read model, and read-your-writes for the API."""

    def __init__(self, db: SqlDatabase, codec: SessionStateCodec, projector: Any) -> None:
        self._db = db
        self._codec = codec
        self._projector = projector
        self._view = db.table("read_sessions")

    def catch_up(self, position: int | None = None) -> None:
        """Make the read model reflect the log up to ``position`` (or its head)."""
        self._projector.catch_up(position)

    def session_state(self, session_id: int) -> Session | None:
        """The projected state of a session, or None if the read model has not seen it."""
        with self._db.transaction(commit=False) as cursor:
            cursor.execute(
                f"SELECT version, state FROM {self._view} WHERE session_id = %(id)s",
                {"id": str(session_id)},
            )
            row = cursor.fetchone()
        if row is None:
            return None
        return self._codec.decode(session_id, int(row["version"]), row["state"])
