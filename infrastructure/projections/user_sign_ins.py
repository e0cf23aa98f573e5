"""Live sign-ins by user, across every session: what a "your devices" list shows.

``read_user_sign_ins(sign_in_id, user_id, session_id, created_at, expires_at, last_active_at,
user_agent, client_address)``, one row per sign-in that has not ended (signed out, remotely
or not, or noticed as expired); a row goes when its sign-in ends. Times are ISO 8601 text.
The user agent and address are those of the request that last used the sign-in, as the
events keep them (so as ``SESSION_LEDGER_AUDIT_CLIENT_ADDRESS`` says: whole, truncated or
hashed). Sign-ins past their lifetime or idle timeout that nobody has noticed yet are still
rows: readers filter by time.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, ClassVar

from application.ports import UserSignIn
from domain.events import END_REASONS
from domain.session import Session
from infrastructure.projections.engine import Projector
from infrastructure.projections.projection import (
    Payload,
    ProjectedEvent,
    Projection,
    Write,
    recorded_context,
)
from infrastructure.sql import SqlDatabase

COLUMNS = (
    "sign_in_id", "user_id", "session_id", "created_at", "expires_at", "last_active_at",
    "user_agent", "client_address",
)  # fmt: skip
# Events by which a session's own browser uses one of its sign-ins.
_ACTIVITY = ("ActiveSignInSwitched", "MembershipActivated", "SignInActivityNoted")


class UserSignInsView(Projection):
    """Folds session events into ``read_user_sign_ins``."""

    name: ClassVar[str] = "user_sign_ins"
    tables: ClassVar[tuple[str, ...]] = ("read_user_sign_ins",)

    def __init__(self, payload: Payload) -> None:
        self._payload = payload

    def create_statements(self, db: SqlDatabase, generation: int) -> list[str]:
        """The table and its index by user."""
        table = self.physical(db, "read_user_sign_ins", generation)
        columns = ", ".join(
            f"{c} TEXT" + (" PRIMARY KEY" if c == "sign_in_id" else "") for c in COLUMNS
        )
        return [
            f"CREATE TABLE IF NOT EXISTS {table} ({columns})",
            f"CREATE INDEX IF NOT EXISTS read_user_sign_ins_g{generation}_user_idx "
            f"ON {table} (user_id)",
        ]

    def apply(self, write: Write, batch: Sequence[ProjectedEvent]) -> None:
        """Insert, touch or delete each sign-in's row, event by event (order matters)."""
        cursor, table = write.cursor, write.table("read_user_sign_ins")
        for projected in batch:
            if not isinstance(projected.event, Session.Event):
                continue
            event: Any = projected.event  # each kind has its own fields
            kind = type(event).__name__
            if kind == "SignInCompleted":
                row = {
                    "sign_in_id": str(event.sign_in_id),
                    "user_id": str(event.user_id),
                    "session_id": str(event.originator_id.int),
                    "created_at": event.timestamp.isoformat(),
                    "expires_at": event.expires_at.isoformat(),
                    "last_active_at": event.timestamp.isoformat(),
                    "user_agent": "",  # events recorded outside a request have no context
                    "client_address": "",
                    **self._context(projected),
                }
                names = ", ".join(COLUMNS)
                values = ", ".join(f"%({c})s" for c in COLUMNS)
                cursor.execute(f"INSERT INTO {table} ({names}) VALUES ({values})", row)
            elif kind in _ACTIVITY:
                context = self._context(projected)
                sets = ", ".join(f"{c} = %({c})s" for c in context)
                cursor.execute(
                    f"UPDATE {table} SET last_active_at = %(at)s{', ' if sets else ''}{sets} "
                    "WHERE sign_in_id = %(id)s",
                    {"at": event.timestamp.isoformat(), "id": str(event.sign_in_id), **context},
                )
            elif kind in END_REASONS:
                ended = getattr(event, "sign_in_ids", None) or [event.sign_in_id]
                cursor.executemany(
                    f"DELETE FROM {table} WHERE sign_in_id = %(id)s",
                    [{"id": str(i)} for i in ended],
                )

    def _context(self, projected: ProjectedEvent) -> dict[str, str]:
        """The user agent and address recorded with the event, if a request recorded it."""
        context = recorded_context(projected, self._payload)
        if context is None:
            return {}
        return {
            "user_agent": str(context.get("user_agent", "")),
            "client_address": str(context.get("client_address", "")),
        }


class SqlUserSignIns:
    """Queries of ``read_user_sign_ins``, caught up before each answer (read-your-writes)."""

    def __init__(self, db: SqlDatabase, projector: Projector) -> None:
        self._db = db
        self._projector = projector
        self._view = db.table("read_user_sign_ins")

    def of_user(self, user_id: int) -> list[UserSignIn]:
        """The user's sign-ins that have not ended, oldest first."""
        self._projector.catch_up()
        with self._db.read() as cursor:
            cursor.execute(f"SELECT * FROM {self._view} WHERE user_id = %(u)s", {"u": str(user_id)})
            rows = cursor.fetchall()
        return sorted((_sign_in(r) for r in rows), key=lambda s: (s.created_at, s.id))

    def get(self, sign_in_id: int) -> UserSignIn | None:
        """The sign-in, unless it has ended (or never existed)."""
        self._projector.catch_up()
        with self._db.read() as cursor:
            cursor.execute(
                f"SELECT * FROM {self._view} WHERE sign_in_id = %(id)s", {"id": str(sign_in_id)}
            )
            row = cursor.fetchone()
        return None if row is None else _sign_in(row)


def _sign_in(row: Any) -> UserSignIn:
    return UserSignIn(
        id=int(row["sign_in_id"]),
        user_id=int(row["user_id"]),
        session_id=int(row["session_id"]),
        created_at=datetime.fromisoformat(row["created_at"]),
        expires_at=datetime.fromisoformat(row["expires_at"]),
        last_active_at=datetime.fromisoformat(row["last_active_at"]),
        user_agent=row["user_agent"] or "",
        client_address=row["client_address"] or "",
    )
