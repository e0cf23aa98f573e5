"""Striped locks: a fixed set of locks that any number of keys share, a key always one."""

from __future__ import annotations

import threading

_MASK64 = (1 << 64) - 1


class StripedLocks:
    """A fixed set of locks shared out by key: a key always gets the same lock."""

    def __init__(self, stripes: int = 1024) -> None:
        self._locks = [threading.Lock() for _ in range(stripes)]

    def get(self, key: int) -> threading.Lock:
        """The lock for ``key``."""
        return self._locks[_mix64(key) % len(self._locks)]


def _mix64(key: int) -> int:
    """SplitMix64's finalizer: every bit of ``key`` moves the low bits. Our snowflake ids
    keep a per-millisecond sequence in their low 12 bits, so ``hash(id) % stripes`` (an int
    hashes to itself) put ids drawn in different milliseconds on one lock."""
    z = key & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)
