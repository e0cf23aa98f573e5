"""Opening the databases: a fast check that PostgreSQL answers, each pool prepared before its
first connection (target node, bounded waits, failover), and the views and read-replica
databases besides the event store's."""

from __future__ import annotations

from typing import Any

import psycopg

from application.errors import StoreUnavailable
from infrastructure.multihost import replace_all_after_failover, target_writable
from infrastructure.outage import harden_datastore
from infrastructure.persistence import (
    TARGET_SESSION_ATTRS,
    StoreConfig,
    StoreConfigError,
    open_sql_database,
    store_config,
)
from infrastructure.projections.replica_reads import ReplicaReads
from infrastructure.settings import Settings
from infrastructure.sql import SqlDatabase


def views_database(settings: Settings, sql: SqlDatabase) -> SqlDatabase:
    """The database of the projections: the store's own, or its own URL's."""
    if not settings.views_database_url:
        return sql
    return _other_database(settings, settings.views_database_url, "views database", True)


def replica_reads(settings: Settings) -> ReplicaReads | None:
    """Reads from a replica, when a read database URL is set."""
    if not settings.read_database_url:
        return None
    # Not checked at start: reads fall back to the primary while no replica answers.
    replica = _other_database(settings, settings.read_database_url, "read database", False)
    return ReplicaReads(replica, settings.read_replica_wait_seconds)


def _other_database(settings: Settings, url: str, what: str, check: bool) -> SqlDatabase:
    """A database of its own, besides the event store's, from another URL setting."""
    try:
        config = store_config(settings, url)
    except StoreConfigError as error:
        raise StoreUnavailable(f"{what}: {error}") from None
    if check:
        check_reachable(config)
    database = open_sql_database(config)
    prepare_pool(settings, database.datastore, config.env.get(TARGET_SESSION_ATTRS, ""))
    return database


def prepare_pool(settings: Settings, datastore: object, session_attrs: str) -> None:
    """Before a PostgreSQL pool's first connection: which node it wants (a cluster URL's
    ``target_session_attrs``), bounded waits, and, on a cluster, replacing every dead
    connection together after a failover."""
    target_writable(datastore, session_attrs)
    harden_datastore(
        datastore, settings.database_timeout_seconds, settings.postgres_statement_timeout_seconds
    )
    if session_attrs:
        replace_all_after_failover(datastore)


def check_reachable(config: StoreConfig) -> None:
    """Fail fast, with the server's own reason, when PostgreSQL does not answer."""
    if config.kind != "postgres":
        return
    env = config.env
    options: dict[str, Any] = {
        "dbname": env["POSTGRES_DBNAME"],
        "host": env["POSTGRES_HOST"],
        "port": env["POSTGRES_PORT"],
        "user": env["POSTGRES_USER"],
        "password": env["POSTGRES_PASSWORD"] or None,
        "connect_timeout": 5,
    }
    if env[TARGET_SESSION_ATTRS]:
        options["target_session_attrs"] = env[TARGET_SESSION_ATTRS]
    with psycopg.connect(**options):
        pass
