"""Snowflake ids: 64-bit, time-ordered, unique across threads and (very nearly) processes.

Layout: 41 bits of milliseconds since 2020-01-01, 10 bits of generator id (random per
process), 12 bits of sequence. That gives 18-19 decimal digits for the next decades.
"""

from __future__ import annotations

import secrets
import threading
import time

from application.ports import Clock

EPOCH_MS = 1_577_836_800_000  # 2020-01-01T00:00:00Z
_SEQUENCE_BITS = 12
_GENERATOR_BITS = 10


class SnowflakeGenerator:
    """Thread-safe generator of time-ordered 64-bit ids."""

    def __init__(self, generator_id: int | None = None, clock: Clock | None = None) -> None:
        # The system clock by default; an injected one lets tests place ids in time.
        self._clock = clock
        self._generator_id = (
            secrets.randbelow(1 << _GENERATOR_BITS) if generator_id is None else generator_id
        )
        self._lock = threading.Lock()
        self._last_ms = 0
        self._sequence = 0

    def next_id(self) -> int:
        """A new id, greater than every id this generator returned before."""
        with self._lock:
            wall = self._clock.now().timestamp() if self._clock else time.time()
            now_ms = max(int(wall * 1000) - EPOCH_MS, self._last_ms)
            if now_ms == self._last_ms:
                self._sequence = (self._sequence + 1) & ((1 << _SEQUENCE_BITS) - 1)
                if self._sequence == 0:
                    now_ms += 1  # borrow from the next millisecond rather than block
            else:
                self._sequence = 0
            self._last_ms = now_ms
            return (
                (now_ms << (_GENERATOR_BITS + _SEQUENCE_BITS))
                | (self._generator_id << _SEQUENCE_BITS)
                | self._sequence
            )
