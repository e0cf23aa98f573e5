"""Reads a streaming replica may answer, when it has replayed enough, within a bounded wait.

With ``SESSION_LEDGER_READ_DATABASE_URL`` set (on a cluster, every node listed with
``target_session_attrs=prefer-standby``), the session read model, the audit routes'
analytics and the audit's history, past states and verification (infrastructure/audit/
sources.py) read from a replica first. A browser must still read its own writes: the caller
says what it needs (a session's version it knows was written), the replica is polled until
it has replayed that far, for at most ``SESSION_LEDGER_READ_REPLICA_WAIT_SECONDS``, and the
primary answers otherwise, or when the replica cannot be reached. Which of the two answered
is counted, for /health and /metrics.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

import psycopg
from eventsourcing.persistence import PersistenceError

from infrastructure.sql import SqlDatabase

T = TypeVar("T")

POLL_SECONDS = 0.005


class ReplicaReads:
    """Where reads that tolerate a replica go, and how many each side answered."""

    def __init__(self, replica: SqlDatabase, wait_seconds: float) -> None:
        self.replica = replica
        self.wait_seconds = wait_seconds
        self.served = {"replica": 0, "primary": 0}
        self._lock = threading.Lock()

    def read(
        self,
        query: Callable[[SqlDatabase], T],
        fresh_enough: Callable[[T], bool],
        primary: SqlDatabase,
    ) -> T:
        """``query`` on the replica once its answer is ``fresh_enough``, else on ``primary``."""

        def attempt() -> tuple[T] | None:
            answer = query(self.replica)
            return (answer,) if fresh_enough(answer) else None

        found = self._poll(attempt)
        return found[0] if found is not None else query(primary)

    def caught_up(self, position: Callable[[SqlDatabase], int], needed: int) -> bool:
        """Whether the replica's ``position`` reaches ``needed`` within the wait (then the
        caller reads there; otherwise from the primary)."""
        return self._poll(lambda: True if position(self.replica) >= needed else None) is not None

    def _poll(self, attempt: Callable[[], T | None]) -> T | None:
        """``attempt`` on the replica until it answers, for at most the wait; counted."""
        deadline = time.monotonic() + self.wait_seconds
        while True:
            try:
                answer = attempt()
            except (PersistenceError, psycopg.Error):
                break  # the replica is away: the primary answers, correctly if slower
            if answer is not None:
                self._count("replica")
                return answer
            if time.monotonic() >= deadline:
                break
            time.sleep(POLL_SECONDS)
        self._count("primary")
        return None

    def _count(self, side: str) -> None:
        with self._lock:
            self.served[side] += 1

    def close(self) -> None:
        """Release the replica's connections."""
        self.replica.close()
