"""Strict id parsing and the snowflake generator."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.ids import MAX_ID, aggregate_uuid, parse_id, snowflake_of
from infrastructure.ids import SnowflakeGenerator


@pytest.mark.parametrize(
    "raw",
    [
        None,
        "",
        " 1",
        "1 ",
        "+1",
        "-1",
        "01",
        "0",
        "1_000",
        "1.0",
        "1e3",
        "0x10",
        "١٢٣",  # Arabic-Indic digits: str.isdigit() says yes, the contract says no
        str(MAX_ID + 1),
        "9" * 21,
        "12a",
    ],
)
def test_non_canonical_ids_are_refused(raw: str | None) -> None:
    assert parse_id(raw) is None


@given(st.integers(min_value=1, max_value=MAX_ID))
def test_canonical_ids_round_trip(value: int) -> None:
    assert parse_id(str(value)) == value
    assert snowflake_of(aggregate_uuid(value)) == value


def test_snowflakes_are_unique_and_increasing_across_threads() -> None:
    generator = SnowflakeGenerator()
    results: list[list[int]] = [[] for _ in range(8)]

    def draw(into: list[int]) -> None:
        into.extend(generator.next_id() for _ in range(5000))

    threads = [threading.Thread(target=draw, args=(r,)) for r in results]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    every = [i for r in results for i in r]
    assert len(set(every)) == len(every)
    for r in results:
        assert r == sorted(r)
    assert all(17 <= len(str(i)) <= 19 for i in every)
