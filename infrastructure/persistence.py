"""From ``SESSION_LEDGER_DATABASE_URL`` to an eventsourcing environment and a SQL handle.

The URL is the only switch between stores:

- ``memory://`` keeps events in process memory (eventsourcing.popo) and our tables in a
  private in-memory SQLite database; for tests and trials, gone at exit.
- ``sqlite:///relative/file.db`` or ``sqlite:////absolute/file.db`` (SQLAlchemy's
  convention): the embedded default.
- ``postgresql://user:password@host:port/dbname[?schema=name]``: production; on a replicated
  cluster, ``host1:port1,host2:port2,...`` with ``target_session_attrs=read-write`` (see
  ``infrastructure.multihost``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote

from eventsourcing.postgres import PostgresDatastore
from eventsourcing.sqlite import SQLiteDatastore

from infrastructure.multihost import MultiHostUrlError, parse_postgres_url
from infrastructure.settings import Settings
from infrastructure.sql import SqlDatabase

TARGET_SESSION_ATTRS = "SESSION_LEDGER_TARGET_SESSION_ATTRS"


class StoreConfigError(ValueError):
    """Raised when the database URL cannot be used; the message is safe to print."""


@dataclass(frozen=True)
class StoreConfig:
    """Which store to use, as eventsourcing settings, and a printable description."""

    kind: Literal["memory", "sqlite", "postgres"]
    env: dict[str, str]
    description: str


def store_config(settings: Settings, url: str | None = None) -> StoreConfig:
    """Translate the database URL (or ``url``) into eventsourcing's environment keys."""
    url = url or settings.database_url
    if url.startswith("memory://"):
        return StoreConfig("memory", {"PERSISTENCE_MODULE": "eventsourcing.popo"}, "memory")
    if url.startswith("sqlite://"):
        return _sqlite_config(url, settings)
    return _postgres_config(url, settings)


def _sqlite_config(url: str, settings: Settings) -> StoreConfig:
    raw = url.removeprefix("sqlite://")
    if raw in ("", "/", "/:memory:"):
        msg = "sqlite:// needs a file path, e.g. sqlite:///session-ledger.db; use memory:// instead"
        raise StoreConfigError(msg)
    path = Path(unquote(raw.removeprefix("/")))
    if not path.parent.exists():
        msg = f"cannot open SQLite database {path}: directory {path.parent} does not exist"
        raise StoreConfigError(msg)
    env = {
        "PERSISTENCE_MODULE": "eventsourcing.sqlite",
        "SQLITE_DBNAME": str(path),
        "SQLITE_LOCK_TIMEOUT": str(settings.database_timeout_seconds),
        "APPLICATION_RECORDER_TOPIC": (
            "infrastructure.audit.sealing:SealingSQLiteApplicationRecorder"
        ),
    }
    return StoreConfig("sqlite", env, f"SQLite file {path}")


def _postgres_config(url: str, settings: Settings) -> StoreConfig:
    try:
        parsed = parse_postgres_url(url)
    except MultiHostUrlError as error:
        raise StoreConfigError(str(error)) from None
    env = {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": parsed.dbname,
        # libpq takes comma-separated lists here: several nodes of one cluster.
        "POSTGRES_HOST": parsed.hosts,
        "POSTGRES_PORT": parsed.ports,
        "POSTGRES_USER": parsed.user,
        "POSTGRES_PASSWORD": parsed.password,
        "POSTGRES_SCHEMA": parsed.schema,
        "POSTGRES_POOL_SIZE": str(settings.postgres_pool_size),
        "POSTGRES_MAX_OVERFLOW": str(settings.postgres_pool_size),
        "POSTGRES_CONNECT_TIMEOUT": str(settings.database_timeout_seconds),
        "POSTGRES_LOCK_TIMEOUT": str(settings.postgres_lock_timeout_seconds),
        "POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT": "30",
        "APPLICATION_RECORDER_TOPIC": (
            "infrastructure.audit.recorders:SealingPostgresApplicationRecorder"
        ),
        # Ours, not eventsourcing's: the container applies it to the pool.
        TARGET_SESSION_ATTRS: parsed.target_session_attrs,
    }
    schema = parsed.schema
    where = parsed.where + (f" (schema {schema})" if schema else "")
    return StoreConfig("postgres", env, f"PostgreSQL at {where}")


def open_sql_database(config: StoreConfig) -> SqlDatabase:
    """A SQL handle with a pool of its own, on the database a config names."""
    env = config.env
    if config.kind == "sqlite":
        lock_timeout = int(env["SQLITE_LOCK_TIMEOUT"])
        return SqlDatabase(SQLiteDatastore(env["SQLITE_DBNAME"], lock_timeout=lock_timeout))
    if config.kind == "postgres":
        return SqlDatabase(
            PostgresDatastore(
                dbname=env["POSTGRES_DBNAME"],
                host=env["POSTGRES_HOST"],
                port=env["POSTGRES_PORT"],
                user=env["POSTGRES_USER"],
                password=env["POSTGRES_PASSWORD"],
                schema=env["POSTGRES_SCHEMA"],
                pool_size=int(env["POSTGRES_POOL_SIZE"]),
                max_overflow=int(env["POSTGRES_MAX_OVERFLOW"]),
                connect_timeout=int(env["POSTGRES_CONNECT_TIMEOUT"]),
            )
        )
    return sql_database_for(None)


def sql_database_for(factory: Any) -> SqlDatabase:
    """SQL on the event store's own database, or a private in-memory one for ``memory://``."""
    datastore = getattr(factory, "datastore", None)
    if isinstance(datastore, (SQLiteDatastore, PostgresDatastore)):
        return SqlDatabase(datastore)
    return SqlDatabase(
        SQLiteDatastore(f"file:session-ledger-{uuid.uuid4().hex}?mode=memory&cache=shared")
    )
