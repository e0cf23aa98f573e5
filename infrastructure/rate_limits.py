"""Sliding-window rate limits kept in the database, so every worker process shares them.

``rate_limit_events(bucket, at)``: one row per counted hit (or failure), at its time in epoch
seconds. A limit of N per W seconds lets at most N hits through in *any* W seconds (a fixed
window let 2N through around its boundary); a refused hit is not recorded, so hammering a
limit does not prolong it. Keys carry no secrets or raw emails (callers pass digests; the
bucket is a hash of the key). Rows older than a window are deleted as their bucket is hit,
and old rows of all buckets now and then.
"""

from __future__ import annotations

import hashlib
import math
import random

from application.errors import RateLimited
from application.ports import Clock, Recent
from infrastructure.sql import SqlCursor, SqlDatabase

SWEEP_PROBABILITY = 0.01
SWEEP_AGE_SECONDS = 86_400


class SqlRateLimiter:
    """Sliding-window counts per key; raises RateLimited with the seconds until one frees."""

    def __init__(self, db: SqlDatabase, clock: Clock, enabled: bool = True) -> None:
        self._db = db
        self._clock = clock
        self._enabled = enabled
        self._table = db.table("rate_limit_events")

    def hit(self, key: str, limit: int, window_seconds: int) -> None:
        """Count one hit; RateLimited, without counting it, when the last ``window_seconds``
        already hold ``limit`` hits."""
        if not self._enabled:
            return
        now = self._now()
        bucket = _bucket(key)
        with self._db.transaction(immediate=True) as cursor:
            self._lock(cursor, bucket)
            cursor.execute(
                f"DELETE FROM {self._table} WHERE bucket = %(b)s AND at <= %(old)s",
                {"b": bucket, "old": now - window_seconds},
            )
            recent = self._recent(cursor, bucket, now - window_seconds)
            if recent.count < limit:
                self._insert(cursor, bucket, now)
        if recent.count >= limit:
            raise RateLimited(retry_after=_seconds(recent.oldest + window_seconds - now))

    def recent(self, key: str, window_seconds: int) -> Recent:
        """What ``key`` recorded in the last ``window_seconds`` (nothing when disabled)."""
        if not self._enabled:
            return Recent(0, 0.0, 0.0)
        now = self._now()
        with self._db.read() as cursor:
            return self._recent(cursor, _bucket(key), now - window_seconds)

    def record(self, key: str) -> None:
        """Record one event for ``key`` (a failure), with no limit of its own."""
        if not self._enabled:
            return
        with self._db.transaction() as cursor:
            self._insert(cursor, _bucket(key), self._now())

    def retry_after(self, moment: float) -> int:
        """Whole seconds from now until ``moment`` (at least 1)."""
        return _seconds(moment - self._now())

    def _now(self) -> float:
        return self._clock.now().timestamp()

    def _lock(self, cursor: SqlCursor, bucket: str) -> None:
        # SQLite's immediate transaction already holds the write lock; PostgreSQL takes a
        # transaction-scoped lock per bucket, so two workers cannot both see N-1 hits.
        if self._db.dialect == "postgres":
            key = int.from_bytes(bytes.fromhex(bucket[:16]), "big", signed=True)
            cursor.execute("SELECT pg_advisory_xact_lock(%(k)s)", {"k": key})

    def _recent(self, cursor: SqlCursor, bucket: str, since: float) -> Recent:
        cursor.execute(
            f"SELECT COUNT(*) AS n, MIN(at) AS oldest, MAX(at) AS newest FROM {self._table} "
            "WHERE bucket = %(b)s AND at > %(since)s",
            {"b": bucket, "since": since},
        )
        row = cursor.fetchone()
        if row is None or not row["n"]:
            return Recent(0, 0.0, 0.0)
        return Recent(int(row["n"]), float(row["oldest"]), float(row["newest"]))

    def _insert(self, cursor: SqlCursor, bucket: str, now: float) -> None:
        cursor.execute(
            f"INSERT INTO {self._table} (bucket, at) VALUES (%(b)s, %(at)s)",
            {"b": bucket, "at": now},
        )
        if random.random() < SWEEP_PROBABILITY:
            cursor.execute(
                f"DELETE FROM {self._table} WHERE at < %(old)s",
                {"old": now - SWEEP_AGE_SECONDS},
            )


def _bucket(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def _seconds(delta: float) -> int:
    return max(math.ceil(delta), 1)
