"""Shared fixtures: the three stores (memory, SQLite, PostgreSQL) every store-agnostic test
runs on, and the Hypothesis profiles.

PostgreSQL comes from ``SESSION_LEDGER_TEST_POSTGRES_URL`` (default: the local server's
``test`` database). Each test gets its own schema, dropped afterwards. Outside CI a missing
server skips those tests with a loud reason; under ``CI=true`` it fails them.

Hypothesis runs the ``dev`` profile (few examples) unless ``HYPOTHESIS_PROFILE`` names
another or ``CI=true`` (then ``ci``: thorough and reproducible).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
from eventsourcing.postgres import PostgresDatastore
from hypothesis import HealthCheck, settings

POSTGRES_URL = os.environ.get(
    "SESSION_LEDGER_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
IN_CI = os.environ.get("CI", "").lower() == "true"

# Examples touch real stores and servers, so neither profile has a deadline or calls a slow
# example unhealthy. ``ci`` runs the full count, derandomized (a red run reruns the same
# way), with no example database and failure blobs printed, like Hypothesis's own CI
# profile; ``dev`` runs a tenth and keeps the local example database, which replays a
# failure first. Tests whose every example builds a store cap the count (tests.helpers).
settings.register_profile(
    "ci",
    max_examples=100,
    derandomize=True,
    database=None,
    print_blob=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "dev", max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if IN_CI else "dev"))

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


def schema_url(schema: str) -> str:
    """The test server's URL naming ``schema``."""
    separator = "&" if "?" in POSTGRES_URL else "?"
    return f"{POSTGRES_URL}{separator}schema={schema}"


@contextmanager
def fresh_schema(prefix: str = "t") -> Iterator[str]:
    """The name of a new, empty schema on the test server, dropped with all it holds after.

    The one way the tests make a PostgreSQL store of their own: the fixtures below use it,
    and so do state machines (a schema per example) and tests that need a second store."""
    require_postgres()
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield schema
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@contextmanager
def fresh_postgres_url() -> Iterator[str]:
    """The URL of a new, empty schema on the test server (see :func:`fresh_schema`)."""
    with fresh_schema() as schema:
        yield schema_url(schema)


@contextmanager
def fresh_store(kind: str) -> Iterator[str]:
    """The URL of a new, empty store of ``kind`` (memory, sqlite, postgres), removed after."""
    if kind == "memory":
        yield "memory://"
    elif kind == "sqlite":
        directory = tempfile.mkdtemp(prefix="session-ledger-")
        try:
            yield f"sqlite:///{directory}/events.db"
        finally:
            shutil.rmtree(directory, ignore_errors=True)
    else:
        with fresh_postgres_url() as url:
            yield url


def postgres_datastore(schema: str) -> PostgresDatastore:
    """eventsourcing's datastore on ``schema`` of the test server, with room for many threads
    (recorder tests that append from a dozen threads at once)."""
    info = psycopg.conninfo.conninfo_to_dict(POSTGRES_URL)
    return PostgresDatastore(
        dbname=str(info.get("dbname", "test")),
        host=str(info.get("host", "127.0.0.1")),
        port=str(info.get("port", "5432")),
        user=str(info.get("user", "postgres")),
        password=str(info.get("password", "")),
        schema=schema,
        pool_size=12,
        max_overflow=12,
    )


@pytest.fixture
def postgres_schema() -> Iterator[str]:
    """A fresh PostgreSQL schema's name, dropped after the test."""
    with fresh_schema() as schema:
        yield schema


@pytest.fixture
def postgres_url(postgres_schema: str) -> str:
    """A PostgreSQL URL whose ``schema`` is fresh and dropped after the test."""
    return schema_url(postgres_schema)


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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests on PostgreSQL are in the slow tier (``-m slow``): each makes a schema and its
    tables on a server. That is any test parametrized with the ``postgres`` store (the
    store fixtures above, or a ``store`` parameter) or asking for a schema by name; the
    same tests on memory and SQLite stay in the fast tier."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        on_postgres = callspec is not None and "postgres" in callspec.params.values()
        if on_postgres or "postgres_schema" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)
    if os.environ.get("PYTEST_XDIST_WORKER"):
        # In pytest-xdist's worker processes (which hand tests out in this order): the slow
        # tests first, so that the last tests left to share between the workers are the
        # quick ones and neither waits long for the other at the end.
        items.sort(key=lambda item: item.get_closest_marker("slow") is None)
