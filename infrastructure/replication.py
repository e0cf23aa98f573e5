"""Which PostgreSQL node this process writes to, and how far behind each replica is.

Asked of the primary itself, through the pool the event store uses (so it names the node
that multi-host targeting chose): ``inet_server_addr()``/``inet_server_port()`` for where it
is, ``pg_stat_replication`` for its standbys. The standbys' rows are visible in full only to
members of ``pg_monitor``; ``deploy/cluster`` grants that to the application's role. On
SQLite or in memory there is no replication and nothing to report.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from infrastructure.sql import SqlDatabase

_WHERE = (
    "SELECT host(inet_server_addr()) AS host, inet_server_port() AS port, "
    "pg_is_in_recovery() AS in_recovery, (CASE WHEN pg_is_in_recovery() "
    "THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END)::text AS wal_lsn"
)
_REPLICAS = (
    "SELECT application_name AS name, host(client_addr) AS address, state, sync_state, "
    "pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() "
    "ELSE pg_current_wal_lsn() END, replay_lsn)::bigint AS replay_lag_bytes, "
    "extract(epoch FROM replay_lag)::float8 AS replay_lag_seconds "
    "FROM pg_stat_replication ORDER BY application_name"
)


@dataclass(frozen=True)
class ReplicaLag:
    """One standby as its primary sees it."""

    name: str
    address: str | None
    state: str | None
    sync_state: str | None
    replay_lag_bytes: int | None
    replay_lag_seconds: float | None


@dataclass(frozen=True)
class ReplicationStatus:
    """The node written to, its WAL position, and its replicas."""

    primary: str
    writable: bool
    wal_lsn: str
    replicas: list[ReplicaLag]

    def as_dict(self) -> dict[str, Any]:
        """Plain data for the health report."""
        return asdict(self)


def replication_status(sql: SqlDatabase) -> ReplicationStatus | None:
    """Where writes go and each replica's lag; None when the store is not PostgreSQL."""
    if sql.dialect != "postgres":
        return None
    with sql.read() as cursor:
        cursor.execute(_WHERE)
        where = cursor.fetchone()
        cursor.execute(_REPLICAS)
        rows = cursor.fetchall()
    assert where is not None
    host = where["host"] or "local socket"
    return ReplicationStatus(
        primary=f"{host}:{where['port']}",
        writable=not where["in_recovery"],
        wal_lsn=str(where["wal_lsn"]),
        replicas=[ReplicaLag(**dict(row)) for row in rows],
    )
