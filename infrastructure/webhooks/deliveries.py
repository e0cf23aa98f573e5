"""Deliveries: which are due, what each attempt found, retries, automatic disabling, replay.

A failed attempt is retried after ``retry_delay``: exponential (base * 2^(n-1), capped) with
"equal jitter" (half fixed, half random), so until the cap each gap is at least the one
before; after ``max_attempts`` the delivery is ``failed``. Every attempt lengthens or ends its
endpoint's failure streak; a streak of ``disable_after_failures`` attempts lasting at least
``disable_after_seconds`` disables the endpoint, with the time and the reason.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from application.errors import UnknownEndpoint
from infrastructure.sql import Row, SqlDatabase
from infrastructure.webhooks.attempt_records import AttemptRecords
from infrastructure.webhooks.endpoints import now_ms, time_of
from infrastructure.webhooks.http import Outcome
from infrastructure.webhooks.tables import ATTEMPTS, DELIVERIES, ENDPOINTS, MESSAGES, to_ms


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how far apart attempts are made, and when an endpoint is given up on."""

    max_attempts: int = 15
    base_seconds: float = 5.0
    max_seconds: float = 6 * 3600.0
    disable_after_failures: int = 50
    disable_after_seconds: float = 24 * 3600.0

    def retry_delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        growth = 2.0 ** min(attempt - 1, 60)
        ceiling = min(self.base_seconds * growth, self.max_seconds)
        jitter: float = (rng or random).uniform(0, ceiling / 2)
        return ceiling / 2 + jitter


@dataclass(frozen=True)
class Due:
    """A delivery to attempt now, with its message."""

    endpoint_id: int
    message_id: str
    body: str
    due_at: int = 0  # when it was due: a replay meanwhile makes it due again, at another time


# (the delivery, what the attempt found, when it started in ms, the address it reached)
Attempted = tuple[Due, Outcome, int, str | None]


class DeliveryStore:
    """The delivery and attempt tables."""

    def __init__(self, db: SqlDatabase, policy: RetryPolicy) -> None:
        self.db = db
        self.policy = policy
        self._d, self._m = db.table(DELIVERIES), db.table(MESSAGES)
        self._a, self._e = db.table(ATTEMPTS), db.table(ENDPOINTS)
        self._records = AttemptRecords(db, policy)

    def due(self, endpoint_id: int, limit: int, skip: set[str]) -> list[Due]:
        """Up to ``limit`` pending deliveries of an endpoint whose time has come, oldest event
        first, leaving out those in ``skip`` (in flight)."""
        with self.db.read() as cursor:
            cursor.execute(
                f"SELECT d.message_id, d.next_attempt_at, m.body FROM {self._d} d JOIN {self._m} m "
                "ON m.id = d.message_id WHERE d.endpoint_id = %(e)s AND d.status = 'pending' "
                "AND d.next_attempt_at <= %(now)s ORDER BY d.position, d.message_id "
                "LIMIT %(n)s",
                {"e": endpoint_id, "now": now_ms(), "n": limit + len(skip)},
            )
            rows = cursor.fetchall()
        found = [
            Due(endpoint_id, str(r["message_id"]), str(r["body"]), int(r["next_attempt_at"]))
            for r in rows
        ]
        return [d for d in found if d.message_id not in skip][:limit]

    def record(self, attempts: Sequence[Attempted]) -> None:
        """Record attempts, in one transaction (one commit for many answers): for each, the
        delivery's new state, the endpoint's failure streak, and the attempt itself."""
        self._records.record(attempts)

    def replay(
        self,
        endpoint_id: int,
        event_types: list[str],
        since_position: int | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> int:
        """Queue again (or for the first time: back-fill) every message of the window the
        endpoint subscribes to, with its original id; how many."""
        where = ["1 = 1"]
        params: dict[str, Any] = {"e": endpoint_id, "now": now_ms()}
        if since_position is not None:
            where.append("m.position > %(since)s")
            params["since"] = since_position
        if start is not None:
            where.append("m.occurred_at >= %(start)s")
            params["start"] = to_ms(start)
        if end is not None:
            where.append("m.occurred_at < %(end)s")
            params["end"] = to_ms(end)
        marks = ", ".join(f"%(t{i})s" for i in range(len(event_types)))
        params.update({f"t{i}": t for i, t in enumerate(event_types)})
        with self.db.transaction(immediate=True) as cursor:
            cursor.execute(f"SELECT 1 FROM {self._e} WHERE id = %(e)s", {"e": endpoint_id})
            if cursor.fetchone() is None:
                raise UnknownEndpoint
            cursor.execute(
                f"SELECT m.id, m.position FROM {self._m} m WHERE {' AND '.join(where)} "
                f"AND m.type IN ({marks}) ORDER BY m.position",
                params,
            )
            rows = [{"e": endpoint_id, "m": r["id"], "p": r["position"], "now": params["now"]}
                    for r in cursor.fetchall()]  # fmt: skip
            if rows:
                cursor.executemany(
                    f"INSERT INTO {self._d} (endpoint_id, message_id, position, status, "
                    "created_at, next_attempt_at) VALUES (%(e)s, %(m)s, %(p)s, 'pending', "
                    "%(now)s, %(now)s) ON CONFLICT (endpoint_id, message_id) DO UPDATE SET "
                    "status = 'pending', attempts = 0, finished_at = NULL, "
                    "next_attempt_at = excluded.next_attempt_at",
                    rows,
                )
        return len(rows)

    def deliveries(
        self, endpoint_id: int, status: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """An endpoint's deliveries, newest event first."""
        where = "d.endpoint_id = %(e)s" + (" AND d.status = %(s)s" if status else "")
        with self.db.read() as cursor:
            cursor.execute(
                f"SELECT d.*, m.type FROM {self._d} d JOIN {self._m} m ON m.id = d.message_id "
                f"WHERE {where} ORDER BY d.position DESC, d.message_id DESC LIMIT %(n)s",
                {"e": endpoint_id, "s": status, "n": limit},
            )
            rows = cursor.fetchall()
        return [
            {
                "message_id": r["message_id"],
                "type": r["type"],
                "position": int(r["position"]),
                "status": r["status"],
                "attempts": int(r["attempts"]),
                "created_at": time_of(r["created_at"]),
                "next_attempt_at": (
                    time_of(r["next_attempt_at"]) if r["status"] == "pending" else None
                ),
                "finished_at": time_of(r["finished_at"]),
            }
            for r in rows
        ]

    def attempts(self, endpoint_id: int, message_id: str) -> list[dict[str, Any]]:
        """Every attempt of one message to one endpoint, in order."""
        with self.db.read() as cursor:
            cursor.execute(
                f"SELECT * FROM {self._a} WHERE endpoint_id = %(e)s AND message_id = %(m)s "
                "ORDER BY seq",
                {"e": endpoint_id, "m": message_id},
            )
            rows = cursor.fetchall()
        return [_attempt(r) for r in rows]

    def message(self, message_id: str) -> Row | None:
        """A stored message (id, position, type, body), or None."""
        with self.db.read() as cursor:
            cursor.execute(f"SELECT * FROM {self._m} WHERE id = %(m)s", {"m": message_id})
            return cursor.fetchone()

    def pending_summary(self) -> list[Row]:
        """Per endpoint: pending and failed deliveries, and the oldest pending one's creation."""
        with self.db.read() as cursor:
            cursor.execute(
                f"SELECT endpoint_id, status, count(*) AS n, min(created_at) AS oldest "
                f"FROM {self._d} WHERE status IN ('pending', 'failed') "
                "GROUP BY endpoint_id, status"
            )
            return cursor.fetchall()


def _attempt(row: Row) -> dict[str, Any]:
    return {
        "seq": int(row["seq"]),
        "attempted_at": time_of(row["attempted_at"]),
        "attempted_at_ms": int(row["attempted_at"]),
        "address": row["address"],
        "status_code": row["status_code"],
        "latency_ms": int(row["latency_ms"]),
        "outcome": row["outcome"],
        "error": row["error"],
        "response": row["response"],
        "next_attempt_at": time_of(row["next_attempt_at"]),
        "next_attempt_at_ms": row["next_attempt_at"],
    }
