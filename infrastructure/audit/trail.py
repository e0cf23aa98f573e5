"""What auditors ask of the store: a session's events, its state at any moment, a user's
sign-ins, a verified history, and a faithful export that can be re-imported elsewhere
(the forms of its events and export lines are in :mod:`infrastructure.audit.event_records`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import IO, Any
from uuid import UUID

from eventsourcing.persistence import Notification, StoredEvent

from application.errors import StoreNotEmpty, UnknownSession
from application.ports import Directory
from application.read_model import SessionDocument, rfc3339, session_document
from application.sessions import SessionsApp
from domain.ids import aggregate_uuid
from domain.session import Session
from infrastructure.audit.chain import CHAIN_TABLE, originator_key
from infrastructure.audit.event_records import (
    AuditEvent,
    audit_event,
    export_line,
    plain,
    read_export,
)
from infrastructure.audit.sources import HistorySources
from infrastructure.audit.verify import Verifier, VerifyReport
from infrastructure.projections.replica_reads import ReplicaReads
from infrastructure.sql import SqlDatabase


def _to_ms(moment: datetime) -> datetime:
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


class AuditTrail:
    """Read-only questions about history, plus verification, export and import."""

    def __init__(
        self,
        sessions: SessionsApp,
        db: SqlDatabase,
        views: SqlDatabase,
        replica: ReplicaReads | None = None,
        *,
        directory: Directory,
    ) -> None:
        self.sessions = sessions
        self.directory = directory
        self.db = db
        self.views = views
        self.replica = replica
        self.sources = HistorySources(sessions, db, views, replica)
        self.chain = getattr(sessions.recorder, "chain", None)  # memory:// keeps no seals

    # Reading ----------------------------------------------------------------------------

    def _audit_event(self, stored: StoredEvent, position: int | None) -> AuditEvent:
        payload = self.sessions.mapper.payload(stored)  # type: ignore[attr-defined]
        return audit_event(stored, position, payload)

    def _positions(self, db: SqlDatabase, originator_id: UUID) -> dict[int, int]:
        if self.chain is None:
            return {}
        with db.transaction(commit=False) as cursor:
            cursor.execute(
                f"SELECT position, originator_version FROM {db.table(CHAIN_TABLE)} "
                "WHERE originator_id = %(o)s",
                {"o": originator_key(originator_id)},
            )
            return {int(r["originator_version"]): int(r["position"]) for r in cursor.fetchall()}

    def history(self, session_id: int) -> list[AuditEvent]:
        """Every event of a session, in order, with its position and request context."""
        originator = aggregate_uuid(session_id)
        source = self.sources.current()
        stored = source.recorder.select_events(originator)
        if not stored:
            raise UnknownSession
        positions = self._positions(source.db, originator)
        return [self._audit_event(s, positions.get(s.originator_version)) for s in stored]

    def state(
        self, session_id: int, version: int | None = None, at: datetime | None = None
    ) -> tuple[SessionDocument, int]:
        """The session as it was at ``version`` or at time ``at``; and that version."""
        originator = aggregate_uuid(session_id)
        # From the events alone: snapshots are verified, never trusted.
        history: list[Any] = list(self.sources.current().events.get(originator))
        if not history:
            raise UnknownSession
        if at is not None:
            # Times are shown to the millisecond; compare at that resolution, so the time an
            # event is listed with finds that event.
            versions = [e.originator_version for e in history if _to_ms(e.timestamp) <= at]
            if not versions:
                raise UnknownSession("The session did not exist yet at that time.")
            version = versions[-1]
        version = history[-1].originator_version if version is None else version
        if not 1 <= version <= history[-1].originator_version:
            raise UnknownSession(f"The session has no version {version}.")
        session: Any = None
        for event in history[:version]:
            session = event.mutate(session)
        assert isinstance(session, Session)
        now = at or session.modified_on
        return session_document(session, self.directory, now), version

    def user_sign_ins(self, user_id: int) -> list[dict[str, Any]]:
        """A user's sign-ins across all sessions (from the analytics projection, caught up);
        from the replica once it has replayed the analytics as far as the primary has them."""

        def query(db: SqlDatabase) -> tuple[int, list[dict[str, Any]]]:
            with db.transaction(commit=False) as cursor:  # one snapshot: position and rows
                cursor.execute(
                    f"SELECT position FROM {db.table('projection_state')} WHERE name = 'analytics'"
                )
                state = cursor.fetchone()
                cursor.execute(
                    f"SELECT * FROM {db.table('analytics_sign_ins')} WHERE user_id = %(u)s "
                    "ORDER BY started_at",
                    {"u": str(user_id)},
                )
                rows = cursor.fetchall()
            return (int(state["position"]) if state else 0), [plain(dict(r)) for r in rows]

        if self.replica is None:
            return query(self.views)[1]
        projected = self._analytics_position()
        return self.replica.read(query, lambda got: got[0] >= projected, self.views)[1]

    def _analytics_position(self) -> int:
        with self.views.read() as cursor:
            cursor.execute(
                f"SELECT position FROM {self.views.table('projection_state')} "
                "WHERE name = 'analytics'"
            )
            row = cursor.fetchone()
        return int(row["position"]) if row else 0

    def verify(self, expected_head: str | None = None) -> VerifyReport:
        """Verify the whole store."""
        if self.chain is None:
            return VerifyReport(problem="this store (memory://) keeps no seals to verify")
        source = self.sources.current()
        return Verifier(source, source.db, self.chain).verify(expected_head)

    # Export and import ------------------------------------------------------------------

    def export(self, out: IO[str], since: datetime | None = None, progress: Any = None) -> int:
        """Write every event (from ``since``) as JSON Lines; return how many."""
        count = 0
        seals = self._seal_hashes()
        for notification in self._notifications():
            event = self._audit_event(notification, notification.id)
            if since is not None and event.time and event.time < rfc3339(since):
                continue
            out.write(export_line(event, notification, seals.get(notification.id)))
            count += 1
            if progress is not None:
                progress(notification.id)
        return count

    def _notifications(self) -> Iterator[Notification]:
        position = 0
        while batch := self.sessions.recorder.select_notifications(
            start=position, limit=1000, inclusive_of_start=False
        ):
            yield from batch
            position = batch[-1].id

    def _seal_hashes(self) -> dict[int, str]:
        if self.chain is None:
            return {}
        with self.db.transaction(commit=False) as cursor:
            cursor.execute(f"SELECT position, global_hash FROM {self.db.table(CHAIN_TABLE)}")
            return {int(r["position"]): str(r["global_hash"]) for r in cursor.fetchall()}

    def import_lines(self, lines: Iterable[str]) -> int:
        """Append a whole export, checked first, to an empty store, in one transaction.

        The file must be a complete export: every aggregate's versions start at 1 without
        gaps, and each line's ``global_hash`` matches the chain recomputed from the lines.
        """
        if self.sessions.recorder.max_notification_id():
            raise StoreNotEmpty
        events = read_export(lines, self.chain)
        if events:
            self.sessions.recorder.insert_events(events)
        return len(events)
