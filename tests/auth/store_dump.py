"""Everything a store holds, as text: every row of every table, bytes decoded and in hex."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from urllib.parse import parse_qs, unquote, urlsplit

import psycopg
from psycopg import sql

from infrastructure.container import Services
from tests.conftest import POSTGRES_URL


def _texts(value: object) -> Iterator[str]:
    if isinstance(value, memoryview):
        value = value.tobytes()
    if isinstance(value, bytes):
        yield value.decode("utf-8", "replace")
        yield value.hex()
    elif value is not None:
        yield str(value)


def _sqlite_rows(path: str) -> Iterator[tuple[str, tuple[object, ...]]]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            quoted = '"' + table.replace('"', '""') + '"'
            for row in conn.execute(f"SELECT * FROM {quoted}"):
                yield table, tuple(row)


def _postgres_rows(schema: str) -> Iterator[tuple[str, tuple[object, ...]]]:
    with psycopg.connect(POSTGRES_URL) as conn:
        tables = [
            str(r[0])
            for r in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                (schema,),
            )
        ]
        for table in tables:
            query = sql.SQL("SELECT * FROM {}.{}").format(
                sql.Identifier(schema), sql.Identifier(table)
            )
            for row in conn.execute(query):
                yield table, tuple(row)


def store_rows(database_url: str) -> list[tuple[str, tuple[object, ...]]]:
    """(table, row) of every row in the store that ``database_url`` names."""
    if database_url.startswith("sqlite:///"):
        return list(_sqlite_rows(unquote(database_url.removeprefix("sqlite:///"))))
    schema = parse_qs(urlsplit(database_url).query)["schema"][0]
    return list(_postgres_rows(schema))


def store_text(database_url: str, services: Services) -> str:
    """One text of every value in the store, plus every event as the mapper decodes it."""
    parts = [f"[{table}]" for table, _ in store_rows(database_url)]
    for table, row in store_rows(database_url):
        parts.append(table)
        for value in row:
            parts.extend(_texts(value))
    app = services.sessions
    start = 1
    while page := app.recorder.select_notifications(start=start, limit=500):
        parts.extend(repr(vars(app.mapper.to_domain_event(n))) for n in page)
        start = page[-1].id + 1
    return "\n".join(parts)
