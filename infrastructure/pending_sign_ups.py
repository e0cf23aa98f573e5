"""Sign-ups waiting for email verification, kept out of the immutable event log.

The password hash and profile of someone who has not proved their email do not belong in
history that can never be erased; the event log records only that a sign-up was attempted.
Rows are deleted on completion, and expired rows whenever a new sign-up starts.
"""

from __future__ import annotations

from datetime import datetime

from application.ports import Clock, PendingSignUp
from infrastructure.sql import SqlDatabase


class SqlPendingSignUps:
    """``pending_sign_ups(attempt_id, user_id, email, first_name, last_name, password_hash,
    expires_at)``."""

    def __init__(self, db: SqlDatabase, clock: Clock) -> None:
        self._db = db
        self._clock = clock
        self._table = db.table("pending_sign_ups")

    def put(self, pending: PendingSignUp, expires_at: datetime) -> None:
        """Keep a pending sign-up until it is verified or expires."""
        with self._db.transaction() as cursor:
            cursor.execute(
                f"DELETE FROM {self._table} WHERE expires_at < %(now)s", {"now": self._clock.now()}
            )
            cursor.execute(
                f"INSERT INTO {self._table} (attempt_id, user_id, email, first_name, last_name, "
                "password_hash, expires_at) "
                "VALUES (%(a)s, %(u)s, %(e)s, %(f)s, %(l)s, %(p)s, %(x)s)",
                {
                    "a": str(pending.attempt_id), "u": str(pending.user_id), "e": pending.email,
                    "f": pending.first_name, "l": pending.last_name, "p": pending.password_hash,
                    "x": expires_at,
                },
            )  # fmt: skip

    def get(self, attempt_id: int) -> PendingSignUp | None:
        """The pending sign-up of an attempt, unless it has expired."""
        with self._db.transaction(commit=False) as cursor:
            cursor.execute(
                f"SELECT * FROM {self._table} WHERE attempt_id = %(a)s AND expires_at > %(now)s",
                {"a": str(attempt_id), "now": self._clock.now()},
            )
            row = cursor.fetchone()
        if row is None:
            return None
        return PendingSignUp(
            attempt_id=int(row["attempt_id"]),
            user_id=int(row["user_id"]),
            email=str(row["email"]),
            first_name=str(row["first_name"]),
            last_name=str(row["last_name"]),
            password_hash=str(row["password_hash"]),
        )

    def delete(self, attempt_id: int) -> None:
        """Forget a pending sign-up."""
        with self._db.transaction() as cursor:
            cursor.execute(
                f"DELETE FROM {self._table} WHERE attempt_id = %(a)s", {"a": str(attempt_id)}
            )
