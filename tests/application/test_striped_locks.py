"""Per-session locks spread sessions over their stripes, whatever millisecond made their ids."""

from __future__ import annotations

from datetime import timedelta

from application.locks import StripedLocks
from infrastructure.clock import SettableClock
from infrastructure.ids import SnowflakeGenerator


def test_ids_drawn_in_different_milliseconds_get_different_locks() -> None:
    # Given 256 sessions started 2 ms apart (each id is the first of its millisecond)
    clock = SettableClock()
    ids = SnowflakeGenerator(clock=clock)
    session_ids = []
    for _ in range(256):
        session_ids.append(ids.next_id())
        clock.advance(timedelta(milliseconds=2))
    assert len({i >> 22 for i in session_ids}) == 256  # really 256 different milliseconds

    # When each takes its lock
    locks = StripedLocks(1024)
    stripes = {id(locks.get(i)) for i in session_ids}

    # Then they spread over many stripes (a uniform spread of 256 keys over 1024 stripes
    # fills about 226; the low bits alone put all of them on one)
    assert len(stripes) >= 160


def test_a_key_always_gets_the_same_lock() -> None:
    locks = StripedLocks(64)
    ids = SnowflakeGenerator()
    for key in (ids.next_id() for _ in range(500)):
        assert locks.get(key) is locks.get(key)
