"""Fixed-window rate limits counted in the database, so every worker process shares them.

``rate_limit_hits(bucket, window_start, hits)``: one row per key and window. Keys carry no
secrets or raw emails (callers pass digests). Old windows are swept now and then.
"""

from __future__ import annotations

import hashlib
import random

from application.ports import Clock
from domain.errors import RateLimited
from infrastructure.sql import SqlDatabase

SWEEP_PROBABILITY = 0.01


class SqlRateLimiter:
    """Counts hits per key and window; raises RateLimited with the seconds left."""

    def __init__(self, db: SqlDatabase, clock: Clock, enabled: bool = True) -> None:
        self._db = db
        self._clock = clock
        self._enabled = enabled
        self._table = db.table("rate_limit_hits")

    def create_table(self) -> None:
        """Create the table if it is missing."""
        self._db.execute_script(
            [
                f"CREATE TABLE IF NOT EXISTS {self._table} (bucket TEXT NOT NULL, "
                "window_start BIGINT NOT NULL, hits INTEGER NOT NULL, "
                "PRIMARY KEY (bucket, window_start))"
            ]
        )

    def hit(self, key: str, limit: int, window_seconds: int) -> None:
        """Count one hit; RateLimited when the window already holds ``limit`` hits."""
        if not self._enabled:
            return
        now = int(self._clock.now().timestamp())
        window = now - now % window_seconds
        bucket = hashlib.sha256(key.encode()).hexdigest()[:32]
        with self._db.transaction(immediate=True) as cursor:
            cursor.execute(
                f"INSERT INTO {self._table} (bucket, window_start, hits) "
                "VALUES (%(b)s, %(w)s, 1) ON CONFLICT (bucket, window_start) "
                f"DO UPDATE SET hits = {self._table}.hits + 1 RETURNING hits",
                {"b": bucket, "w": window},
            )
            row = cursor.fetchone()
            if random.random() < SWEEP_PROBABILITY:
                cursor.execute(
                    f"DELETE FROM {self._table} WHERE window_start < %(old)s",
                    {"old": now - 86_400},
                )
        if row is not None and int(row["hits"]) > limit:
            raise RateLimited(retry_after=max(window + window_seconds - now, 1))
