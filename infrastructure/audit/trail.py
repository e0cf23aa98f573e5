"""What auditors ask of the store: a session's events, its state at any moment, a user's
sign-ins, a verified history, and a faithful export that can be re-imported elsewhere.

Export lines carry both a readable view (type, time, data, request context) and the exact
stored form (topic, payload in base64), so an import reproduces the events byte for byte and
therefore the same chain head. Field names are documented in docs/audit.md.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import Notification, StoredEvent

from application.read_model import SessionDocument, rfc3339, session_document
from application.request_context import CONTEXT_KEY
from application.sessions import SessionsApp
from domain.errors import SessionLedgerError
from domain.ids import aggregate_uuid
from domain.session import Session
from infrastructure.audit.chain import CHAIN_TABLE, originator_key
from infrastructure.audit.verify import Verifier, VerifyReport
from infrastructure.sql import SqlDatabase

EXPORT_FORMAT = "session-ledger-audit/1"


class UnknownSession(SessionLedgerError):
    """Raised when an audit asks for a session the store has never seen."""

    code = "UNKNOWN_SESSION"
    message = "No such session."


class StoreNotEmpty(SessionLedgerError):
    """Raised when an import would mix with events already in the store."""

    code = "STORE_NOT_EMPTY"
    message = "Import needs an empty store."


@dataclass(frozen=True)
class AuditEvent:
    """One event as auditors read it."""

    position: int | None
    session_id: str | None
    aggregate: str
    version: int
    type: str
    time: str
    data: dict[str, Any]
    context: dict[str, Any] | None

    def as_json(self) -> dict[str, Any]:
        """Stable field names (docs/audit.md)."""
        return {
            "position": self.position,
            "session_id": self.session_id,
            "aggregate": self.aggregate,
            "version": self.version,
            "type": self.type,
            "time": self.time,
            "data": self.data,
            "context": self.context,
        }


def _plain(value: Any) -> Any:
    """JSON-safe: ids as strings (they exceed JavaScript's integers), times in RFC 3339."""
    if isinstance(value, bool) or value is None or isinstance(value, (str, float)):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, datetime):
        return rfc3339(value)
    if isinstance(value, UUID):
        return value.hex
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return str(value)


class AuditTrail:
    """Read-only questions about history, plus verification, export and import."""

    def __init__(self, sessions: SessionsApp, db: SqlDatabase, views: SqlDatabase) -> None:
        self.sessions = sessions
        self.db = db
        self.views = views
        chain = getattr(sessions.recorder, "chain", None)  # memory:// keeps no seals
        self.verifier = Verifier(sessions, db, chain) if chain is not None else None

    # Reading ----------------------------------------------------------------------------

    def _audit_event(self, stored: StoredEvent, position: int | None) -> AuditEvent:
        payload = self.sessions.mapper.payload(stored)  # type: ignore[attr-defined]
        context = payload.pop(CONTEXT_KEY, None)
        timestamp = payload.pop("timestamp", None)
        payload.pop("originator_topic", None)
        key = (
            stored.originator_id
            if isinstance(stored.originator_id, UUID)
            else UUID(str(stored.originator_id))
        )
        return AuditEvent(
            position=position,
            session_id=str(key.int) if key.int < 2**64 else None,
            aggregate=stored.topic.split(":")[-1].split(".")[0],
            version=stored.originator_version,
            type=stored.topic.split(".")[-1],
            time=rfc3339(timestamp) if isinstance(timestamp, datetime) else "",
            data=_plain(payload),
            context=context,
        )

    def _positions(self, originator_id: UUID) -> dict[int, int]:
        if self.verifier is None:
            return {}
        with self.db.transaction(commit=False) as cursor:
            cursor.execute(
                f"SELECT position, originator_version FROM {self.db.table(CHAIN_TABLE)} "
                "WHERE originator_id = %(o)s",
                {"o": originator_key(originator_id)},
            )
            return {int(r["originator_version"]): int(r["position"]) for r in cursor.fetchall()}

    def history(self, session_id: int) -> list[AuditEvent]:
        """Every event of a session, in order, with its position and request context."""
        originator = aggregate_uuid(session_id)
        stored = self.sessions.recorder.select_events(originator)
        if not stored:
            raise UnknownSession
        positions = self._positions(originator)
        return [self._audit_event(s, positions.get(s.originator_version)) for s in stored]

    def state(
        self, session_id: int, version: int | None = None, at: datetime | None = None
    ) -> tuple[SessionDocument, int]:
        """The session as it was at ``version`` or at time ``at``; and that version."""
        originator = aggregate_uuid(session_id)
        try:
            latest: Any = self.sessions.repository.get(originator)
        except AggregateNotFoundError:
            raise UnknownSession from None
        if at is not None:
            history: list[Any] = list(self.sessions.events.get(originator))
            versions = [e.originator_version for e in history if e.timestamp <= at]
            if not versions:
                raise UnknownSession("The session did not exist yet at that time.")
            version = versions[-1]
        version = min(version or latest.version, latest.version)
        if version < 1:
            raise UnknownSession("Versions start at 1.")
        # From the events alone: snapshots are verified, not trusted.
        session: Any = None
        events: list[Any] = list(self.sessions.events.get(originator, lte=version))
        for event in events:
            session = event.mutate(session)
        assert isinstance(session, Session)
        now = at or session.modified_on
        return session_document(session, self.sessions.directory, now), version

    def user_sign_ins(self, user_id: int) -> list[dict[str, Any]]:
        """A user's sign-ins across all sessions (from the analytics projection, caught up)."""
        with self.views.transaction(commit=False) as cursor:
            cursor.execute(
                f"SELECT * FROM {self.views.table('analytics_sign_ins')} WHERE user_id = %(u)s "
                "ORDER BY started_at",
                {"u": str(user_id)},
            )
            rows = cursor.fetchall()
        return [_plain(dict(row)) for row in rows]

    def verify(self, expected_head: str | None = None) -> VerifyReport:
        """Verify the whole store."""
        if self.verifier is None:
            return VerifyReport(problem="this store (memory://) keeps no seals to verify")
        return self.verifier.verify(expected_head)

    # Export and import ------------------------------------------------------------------

    def export(self, out: IO[str], since: datetime | None = None, progress: Any = None) -> int:
        """Write every event (from ``since``) as JSON Lines; return how many."""
        count = 0
        seals = self._seal_hashes()
        for notification in self._notifications():
            event = self._audit_event(notification, notification.id)
            if since is not None and event.time and event.time < rfc3339(since):
                continue
            line = event.as_json()
            line.update(
                format=EXPORT_FORMAT,
                originator_id=originator_key(notification.originator_id),
                topic=notification.topic,
                payload=base64.b64encode(bytes(notification.state)).decode(),
                global_hash=seals.get(notification.id),
            )
            out.write(json.dumps(line, separators=(",", ":")) + "\n")
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
        if self.verifier is None:
            return {}
        with self.db.transaction(commit=False) as cursor:
            cursor.execute(f"SELECT position, global_hash FROM {self.db.table(CHAIN_TABLE)}")
            return {int(r["position"]): str(r["global_hash"]) for r in cursor.fetchall()}

    def import_lines(self, lines: Iterable[str], batch: int = 500) -> int:
        """Append exported events, in order, to an empty store; they are sealed again."""
        if self.sessions.recorder.max_notification_id():
            raise StoreNotEmpty
        pending: list[StoredEvent] = []
        count = 0
        for line in lines:
            if not line.strip():
                continue
            record = json.loads(line)
            pending.append(
                StoredEvent(
                    originator_id=UUID(record["originator_id"]),
                    originator_version=int(record["version"]),
                    topic=record["topic"],
                    state=base64.b64decode(record["payload"]),
                )
            )
            if len(pending) >= batch:
                count += self._append(pending)
        return count + self._append(pending)

    def _append(self, pending: list[StoredEvent]) -> int:
        if pending:
            self.sessions.recorder.insert_events(pending)
        appended = len(pending)
        pending.clear()
        return appended
