"""Reads a streaming replica may answer, when it has replayed enough, within a bounded wait.

With ``SESSION_LEDGER_READ_DATABASE_URL`` set (on a cluster, every node listed with
``target_session_attrs=prefer-standby``), the session read model and the audit routes'
analytics read from a replica first. A browser must still read its own writes: the caller
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
        deadline = time.monotonic() + self.wait_seconds
        while True:
            try:
                answer = query(self.replica)
            except (PersistenceError, psycopg.Error):
                break  # the replica is away: the primary answers, correctly if slower
            if fresh_enough(answer):
                self._count("replica")
                return answer
            if time.monotonic() >= deadline:
                break
            time.sleep(POLL_SECONDS)
        self._count("primary")
        return query(primary)

    def _count(self, side: str) -> None:
        with self._lock:
            self.served[side] += 1

    def close(self) -> None:
        """Release the replica's connections."""
        self.replica.close()
