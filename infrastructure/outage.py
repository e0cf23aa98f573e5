"""A store that does not answer: bounded waits, recognising the failure, and a health probe.

Three things keep an outage from hanging requests:

- every wait on the store is bounded by ``SESSION_LEDGER_DATABASE_TIMEOUT_SECONDS``: the
  libpq connect timeout, the pool's wait for a connection and its give-up on reconnecting
  (PostgreSQL), and the busy timeout (SQLite); PostgreSQL also gets a statement timeout;
- the pool checks a connection before handing it out, so connections the server dropped are
  replaced instead of failing the next request (recovery needs no restart);
- :func:`store_unavailable` tells an outage (the answer is 503, try again) from a bug (500).
"""

from __future__ import annotations

import select
import sqlite3
import time
from dataclasses import dataclass
from typing import Any

import psycopg
import psycopg_pool
from eventsourcing.postgres import ConnectionPool, PostgresDatastore
from eventsourcing.sqlite import SQLiteDatastore

# SQLite's words for "another connection holds the lock" (busy timeout expired).
_SQLITE_BUSY = ("database is locked", "database table is locked", "database is busy")


def store_unavailable(error: BaseException) -> bool:
    """Whether ``error`` (or what caused it) means the store did not answer in time.

    PostgreSQL: connection failures, a pool with no connection in time, statement and lock
    timeouts (psycopg's ``OperationalError`` family, which the pool's timeout belongs to).
    SQLite: a lock still held when the busy timeout ran out. Anything else is a bug.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, StoreDown | psycopg.OperationalError | psycopg.InterfaceError):
            return True
        if isinstance(current, sqlite3.OperationalError):
            return any(words in str(current).lower() for words in _SQLITE_BUSY)
        current = current.__cause__ or current.__context__
    return False


class StoreDown(psycopg.Error):
    """Raised when the pool had no connection to give within the timeout.

    Deliberately not an ``OperationalError``: eventsourcing's recorders retry those ten
    times, and ten waits for a server that is down is what made an outage hang requests.
    """


class FailFastPool(ConnectionPool[Any]):
    """eventsourcing's pool, whose timeout to get a connection ends the request at once."""

    def getconn(self, timeout: float | None = None) -> Any:
        """A connection, or :class:`StoreDown` after ``timeout`` (default: the pool's)."""
        try:
            return super().getconn(timeout)
        except psycopg_pool.PoolTimeout as error:
            raise StoreDown(str(error)) from error


def check_idle_connection(connection: psycopg.Connection[Any]) -> None:
    """Raise if a pooled connection is dead, at the cost of a system call when it is not
    (see :func:`written_while_idle`); the pool replaces it if the ping fails."""
    if written_while_idle(connection):
        ConnectionPool.check_connection(connection)


def written_while_idle(connection: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]) -> bool:
    """Whether an idle pooled connection must be pinged before use (raises if it is closed).

    An idle connection has nothing to read unless the server wrote to it, which it does when
    it goes away (a termination notice, or end of file). Only then is it worth the library's
    check (one round trip). The select never waits.
    """
    if connection.closed:
        raise psycopg.OperationalError("the connection is closed")
    readable, _, _ = select.select([connection.fileno()], [], [], 0)
    return bool(readable)


def harden_datastore(
    datastore: object, timeout_seconds: float, statement_timeout_seconds: float
) -> None:
    """Bound every wait of a PostgreSQL datastore whose pool has not opened yet (SQLite:
    nothing to do, its busy timeout is set where the store is configured).

    eventsourcing builds its pool with the wait for a connection only; this replaces it,
    before the first connection is made, with one that also has the libpq connect timeout,
    the statement timeout, a check of idle connections before use (a restarted server's
    dead connections are replaced, not handed out: :func:`check_idle_connection`), a short
    give-up on reconnecting (the next request starts a fresh attempt instead of waiting out
    an exponential backoff) and no retries of a wait that timed out.
    """
    if not isinstance(datastore, PostgresDatastore):
        return
    old = datastore.pool
    kwargs = _kwargs(old)
    kwargs["connect_timeout"] = max(1, round(timeout_seconds))
    if statement_timeout_seconds:
        kwargs["options"] = f"-c statement_timeout={int(statement_timeout_seconds * 1000)}"
    datastore.pool = FailFastPool(
        get_password_func=old.get_password_func,
        connection_class=old.connection_class,
        kwargs=kwargs,
        min_size=old.min_size,
        max_size=old.max_size,
        open=False,
        configure=old._configure,  # eventsourcing's autocommit and session settings
        check=check_idle_connection,
        timeout=timeout_seconds,
        max_waiting=old.max_waiting,
        max_lifetime=old.max_lifetime,
        reconnect_timeout=timeout_seconds,
    )


def _kwargs(pool: ConnectionPool[Any]) -> dict[str, Any]:
    """The pool's connection arguments (eventsourcing always passes a dict)."""
    kwargs = pool.kwargs
    if callable(kwargs):
        kwargs = kwargs()
    return dict(kwargs or {})


@dataclass(frozen=True)
class Probe:
    """What a direct, pool-free look at the store found."""

    ok: bool
    detail: str
    seconds: float


def probe(datastore: object, timeout_seconds: float) -> Probe:
    """Open a connection of its own (never the pool's, which may be busy or waiting) and run
    ``SELECT 1``, within ``timeout_seconds``."""
    started = time.monotonic()
    try:
        if isinstance(datastore, PostgresDatastore):
            kwargs = {k: v for k, v in _kwargs(datastore.pool).items() if k != "row_factory"}
            kwargs["connect_timeout"] = max(1, round(timeout_seconds))
            kwargs["options"] = f"-c statement_timeout={int(timeout_seconds * 1000)}"
            with psycopg.connect(**kwargs) as pg:
                pg.execute("SELECT 1")
        elif isinstance(datastore, SQLiteDatastore):
            name = datastore.pool.db_name
            lite = sqlite3.connect(name, timeout=timeout_seconds, uri=name.startswith("file:"))
            try:
                lite.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
            finally:
                lite.close()
    except (psycopg.Error, sqlite3.Error, OSError) as error:
        detail = " ".join(str(error).split()) or type(error).__name__
        return Probe(False, detail, time.monotonic() - started)
    return Probe(True, "", time.monotonic() - started)
