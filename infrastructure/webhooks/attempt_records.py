"""Recording what a batch of delivery attempts found, in a few statements per batch.

The sender finishes attempts many at a time; each one changes its delivery (delivered,
failed, or due again after ``retry_delay``), adds a row to the attempts, and lengthens or
ends its endpoint's failure streak. Done one attempt at a time that was four statements and
round trips per attempt; here a batch locks its deliveries with one SELECT per endpoint,
writes the deliveries and the attempts with one statement each (over arrays on PostgreSQL:
see :func:`~infrastructure.sql.insert_rows`), and settles each endpoint's counters and
streak once, from the batch's outcomes in the order they came, with the disabling rule
checked after its failures.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from infrastructure.sql import SqlDatabase, insert_rows, select_in, update_rows
from infrastructure.webhooks.endpoints import now_ms
from infrastructure.webhooks.http import Outcome
from infrastructure.webhooks.tables import ATTEMPTS, DELIVERIES, ENDPOINTS

if TYPE_CHECKING:
    from infrastructure.webhooks.deliveries import Attempted, RetryPolicy

# The PostgreSQL types of what a batch writes (for insert_rows and update_rows).
_DELIVERY_CHANGE = {"e": "bigint", "m": "text", "s": "text", "a": "integer", "t": "integer",
                    "f": "bigint", "r": "bigint"}  # fmt: skip
_ATTEMPT_TYPES = {"endpoint_id": "bigint", "message_id": "text", "seq": "integer",
                  "attempted_at": "bigint", "address": "text", "status_code": "integer",
                  "latency_ms": "integer", "outcome": "text", "error": "text",
                  "response": "text", "next_attempt_at": "bigint"}  # fmt: skip


@dataclass
class _Streak:
    """What a batch did to one endpoint: counts, and the failures after its last success."""

    attempts: int = 0
    delivered: int = 0
    failures: int = 0
    reset: bool = False  # a success came: the streak restarts from the failures after it
    streak: int = 0
    since: int | None = None
    last_failure: Outcome | None = None

    def add(self, outcome: Outcome, attempted_at: int) -> None:
        self.attempts += 1
        if outcome.ok:
            self.delivered += 1
            self.reset, self.streak, self.since = True, 0, None
            return
        self.failures += 1
        self.streak += 1
        self.since = attempted_at if self.since is None else self.since
        self.last_failure = outcome


class AttemptRecords:
    """Writes a batch of attempts into the delivery, attempt and endpoint tables."""

    def __init__(self, db: SqlDatabase, policy: RetryPolicy) -> None:
        self.db = db
        self.policy = policy
        self._d, self._a, self._e = (db.table(t) for t in (DELIVERIES, ATTEMPTS, ENDPOINTS))

    def record(self, attempts: Sequence[Attempted]) -> None:
        """Record the attempts in one transaction; those whose delivery is no longer
        pending (finished by another worker before a lease change) are left out."""
        if not attempts:
            return
        with self.db.transaction(immediate=True) as cursor:
            states = self._lock(cursor, attempts)
            deliveries: list[dict[str, Any]] = []
            rows: list[dict[str, Any]] = []
            streaks: dict[int, _Streak] = {}
            for due, outcome, attempted_at, address in attempts:
                row = states.get((due.endpoint_id, due.message_id))
                if row is None or row["status"] != "pending":
                    continue
                delivery, attempt = self._decide(row, due.due_at, outcome, attempted_at)
                row.update(attempts=delivery["a"], tries=delivery["t"], status=delivery["s"])
                deliveries.append({**delivery, "e": due.endpoint_id, "m": due.message_id})
                rows.append({**attempt, "endpoint_id": due.endpoint_id,
                             "message_id": due.message_id, "address": address})  # fmt: skip
                streaks.setdefault(due.endpoint_id, _Streak()).add(outcome, attempted_at)
            self._write(cursor, deliveries, rows)
            for endpoint_id, streak in streaks.items():
                self._settle(cursor, endpoint_id, streak)

    def _lock(self, cursor: Any, attempts: Sequence[Attempted]) -> dict[tuple[int, str], Any]:
        """The deliveries' states, locked, in one SELECT per endpoint (in key order)."""
        by_endpoint: dict[int, set[str]] = {}
        for due, *_ in attempts:
            by_endpoint.setdefault(due.endpoint_id, set()).add(due.message_id)
        states: dict[tuple[int, str], Any] = {}
        for endpoint_id in sorted(by_endpoint):
            rows = select_in(
                cursor,
                f"SELECT message_id, attempts, tries, status, next_attempt_at FROM {self._d}",
                "message_id",
                by_endpoint[endpoint_id],
                params={"e": endpoint_id},
                suffix=" AND endpoint_id = %(e)s ORDER BY message_id" + self.db.for_update(),
            )
            for row in rows:
                states[(endpoint_id, str(row["message_id"]))] = dict(row)
        return states

    def _decide(
        self, row: Any, due_at: int, outcome: Outcome, attempted_at: int
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The delivery's new state and the attempt's row (without their keys)."""
        attempts, tries = int(row["attempts"]) + 1, int(row["tries"]) + 1
        retry_at: int | None = None
        if int(row["next_attempt_at"]) != due_at:
            # Replayed while this attempt was in flight: keep the attempt, owe the replay.
            status, finished, attempts = "pending", None, int(row["attempts"])
            retry_at = int(row["next_attempt_at"])
        elif outcome.ok:
            status, finished = "delivered", attempted_at
        elif attempts >= self.policy.max_attempts:
            status, finished = "failed", attempted_at
        else:
            status, finished = "pending", None
            ended = attempted_at + outcome.latency_ms  # gaps count from the answer
            retry_at = ended + int(self.policy.retry_delay(attempts) * 1000)
        delivery = {"s": status, "a": attempts, "t": tries, "f": finished, "r": retry_at}
        attempt = {
            "seq": tries, "attempted_at": attempted_at, "status_code": outcome.status,
            "latency_ms": outcome.latency_ms, "outcome": "delivered" if outcome.ok else "failed",
            "error": outcome.error, "response": outcome.response, "next_attempt_at": retry_at,
        }  # fmt: skip
        return delivery, attempt

    def _write(
        self, cursor: Any, deliveries: list[dict[str, Any]], rows: list[dict[str, Any]]
    ) -> None:
        dialect = self.db.dialect
        update_rows(
            cursor, dialect, self._d, _DELIVERY_CHANGE,
            "status = {s}, attempts = {a}, tries = {t}, finished_at = {f}, "
            "next_attempt_at = COALESCE({r}, next_attempt_at)",
            "endpoint_id = {e} AND message_id = {m}",
            deliveries,
        )  # fmt: skip
        insert_rows(cursor, dialect, self._a, _ATTEMPT_TYPES, rows)

    def _settle(self, cursor: Any, endpoint_id: int, streak: _Streak) -> None:
        """The endpoint's totals and failure streak after the batch; then the disabling rule,
        if the batch ended in failures."""
        counts = {"e": endpoint_id, "a": streak.attempts, "d": streak.delivered,
                  "f": streak.failures, "n": streak.streak, "since": streak.since}  # fmt: skip
        totals = (
            "attempts_total = attempts_total + %(a)s, delivered_total = delivered_total + %(d)s,"
            " failures_total = failures_total + %(f)s"
        )
        if streak.reset:
            set_streak = "failure_streak = %(n)s, streak_since = %(since)s"
        else:
            set_streak = (
                "failure_streak = failure_streak + %(n)s,"
                " streak_since = COALESCE(streak_since, %(since)s)"
            )
        cursor.execute(f"UPDATE {self._e} SET {set_streak}, {totals} WHERE id = %(e)s", counts)
        if streak.streak == 0 or streak.last_failure is None:
            return
        policy = self.policy
        cursor.execute(
            f"UPDATE {self._e} SET enabled = 0, disabled_at = %(now)s, disabled_reason = "
            "%(reason)s WHERE id = %(e)s AND enabled = 1 AND failure_streak >= %(n)s "
            "AND streak_since <= %(since)s",
            {
                "e": endpoint_id,
                "now": now_ms(),
                "n": policy.disable_after_failures,
                "since": now_ms() - int(policy.disable_after_seconds * 1000),
                "reason": (
                    f"{policy.disable_after_failures} failed attempts in a row; last: "
                    f"{streak.last_failure.error or 'no answer'}"
                )[:500],
            },
        )
