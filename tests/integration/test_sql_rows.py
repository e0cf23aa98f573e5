"""Writing many rows in one statement: ``insert_rows`` and ``update_rows``, on both stores.

On PostgreSQL they run one statement over binary arrays, on SQLite ``executemany``: the
rows must come out the same either way, NULLs, quotes, backslashes and non-ASCII text
included, with an ``ON CONFLICT`` tail applied and each row's own values used by an update.
"""

from __future__ import annotations

import json

import pytest

from infrastructure.sql import insert_rows, update_rows
from tests.helpers import services_for

TYPES = {"id": "bigint", "name": "text", "body": "text", "seen": "bigint"}
AWKWARD = json.dumps({"q": 'say "hi"', "path": "C:\\temp\\{x}", "é": "日本", "nul": None})


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
def test_rows_written_together_read_back_as_written(
    store: str, request: pytest.FixtureRequest
) -> None:
    url = str(request.getfixturevalue(f"{store}_url"))
    with services_for(url, load_demo=False) as services:
        db = services.views
        table = db.table("rows_test")
        db.execute_script([f"CREATE TABLE {table} (id BIGINT PRIMARY KEY, name TEXT, "
                           "body TEXT, seen BIGINT)"])  # fmt: skip
        first: list[dict[str, object]] = [
            {"id": 1, "name": "one", "body": AWKWARD, "seen": None},
            {"id": 2, "name": None, "body": "", "seen": 2**40},
            {"id": 3, "name": "three", "body": "{}", "seen": -5},
        ]
        again: list[dict[str, object]] = [
            {"id": 2, "name": "two", "body": "x", "seen": 7},
            {"id": 4, "name": "four", "body": "[1]", "seen": 4},
        ]
        with db.transaction() as cursor:
            insert_rows(cursor, db.dialect, table, TYPES, first)
            insert_rows(cursor, db.dialect, table, TYPES, again,
                        " ON CONFLICT (id) DO UPDATE SET name = excluded.name")  # fmt: skip
            insert_rows(cursor, db.dialect, table, TYPES, [])  # nothing to do, no statement
            update_rows(
                cursor, db.dialect, table, {"k": "bigint", "s": "bigint"},
                "seen = COALESCE({s}, seen) + 1", "id = {k}",
                [{"k": 1, "s": 10}, {"k": 3, "s": None}],
            )  # fmt: skip
        with db.transaction(commit=False) as cursor:
            cursor.execute(f"SELECT id, name, body, seen FROM {table} ORDER BY id")
            rows = [dict(r) for r in cursor.fetchall()]
        assert rows == [
            {"id": 1, "name": "one", "body": AWKWARD, "seen": 11},
            {"id": 2, "name": "two", "body": "", "seen": 2**40},  # only the name changed
            {"id": 3, "name": "three", "body": "{}", "seen": -4},
            {"id": 4, "name": "four", "body": "[1]", "seen": 4},
        ]
