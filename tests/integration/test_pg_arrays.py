"""The append's array literals (``infrastructure.audit.pg_arrays``) read back as given.

PostgreSQL itself parses each literal as the array type the append function declares: any
text (quotes, backslashes, commas, braces, spaces, the word NULL, non-ASCII) and None, any
bytes, any bigint, and empty arrays, each compared with what the server returns.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from infrastructure.audit.pg_arrays import bigint_array, bytea_array, text_array
from tests.conftest import POSTGRES_URL, require_postgres

texts = st.lists(st.none() | st.text(st.characters(exclude_characters="\x00")), max_size=8)
blobs = st.lists(st.binary(max_size=64), max_size=8)
bigints = st.lists(st.integers(-(2**63), 2**63 - 1), max_size=8)


@pytest.fixture(scope="module")
def conn() -> Iterator[psycopg.Connection[Any]]:
    require_postgres()
    with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
        yield connection


@given(texts=texts, blobs=blobs, numbers=bigints)
def test_each_literal_reads_back_as_the_list_it_was_written_from(
    conn: psycopg.Connection[Any], texts: list[str | None], blobs: list[bytes], numbers: list[int]
) -> None:
    row = conn.execute(
        "SELECT %s::text[], %s::bytea[], %s::bigint[]",
        (text_array(texts), bytea_array(blobs), bigint_array(numbers)),
    ).fetchone()
    assert row == (texts, blobs, numbers)


def test_the_awkward_strings_read_back(conn: psycopg.Connection[Any]) -> None:
    awkward = ['a"b', "c,d", "e\\f", "NULL", None, "", " padded ", "{x}", "ü", '\\"', "}{"]
    row = conn.execute("SELECT %s::text[]", (text_array(awkward),)).fetchone()
    assert row == (awkward,)
