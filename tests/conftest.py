"""Shared fixtures: the three stores (memory, SQLite, PostgreSQL) every store-agnostic test runs on.

PostgreSQL comes from ``SESSION_LEDGER_TEST_POSTGRES_URL`` (default: the local server's
``test`` database). Each test gets its own schema, dropped afterwards. Outside CI a missing
server skips those tests with a loud reason; under ``CI=true`` it fails them.
"""

from __future__ import annotations

import os
import uuid
import warnings
from collections.abc import Iterator

import psycopg
import pytest

POSTGRES_URL = os.environ.get(
    "SESSION_LEDGER_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
IN_CI = os.environ.get("CI", "").lower() == "true"

_pg_status: str | None = None


def _postgres_problem() -> str:
    """'' when the test server answers, otherwise why not (checked once per run)."""
    global _pg_status
    if _pg_status is None:
        try:
            with psycopg.connect(POSTGRES_URL, connect_timeout=3) as conn:
                conn.execute("SELECT 1")
            _pg_status = ""
        except psycopg.Error as error:
            _pg_status = f"PostgreSQL at {POSTGRES_URL} is not answering: {error}".strip()
    return _pg_status


def require_postgres() -> None:
    """Skip (loudly) or, under CI, fail when the PostgreSQL test server is unreachable."""
    problem = _postgres_problem()
    if not problem:
        return
    if IN_CI:
        pytest.fail(f"CI=true and {problem}")
    warnings.warn(f"SKIPPING PostgreSQL tests: {problem}", stacklevel=2)
    pytest.skip(f"SKIPPED LOUDLY: {problem}")


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A PostgreSQL URL whose ``schema`` is fresh and dropped after the test."""
    require_postgres()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    separator = "&" if "?" in POSTGRES_URL else "?"
    yield f"{POSTGRES_URL}{separator}schema={schema}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@pytest.fixture
def sqlite_url(tmp_path: object) -> str:
    """A URL of a new SQLite file."""
    return f"sqlite:///{tmp_path}/session-ledger.db"


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Each store in turn: in-memory, a SQLite file, a PostgreSQL schema."""
    if request.param == "memory":
        return "memory://"
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_url"))
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture(params=["sqlite", "postgres"])
def durable_database_url(request: pytest.FixtureRequest) -> str:
    """Each durable store in turn: a SQLite file, a PostgreSQL schema."""
    return str(request.getfixturevalue(f"{request.param}_url"))
