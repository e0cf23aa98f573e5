"""The replication report as Prometheus gauges, next to the projections' own."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from infrastructure.replication import ReplicationStatus


def replication_metrics(
    status: ReplicationStatus | None, reads: dict[str, int] | None
) -> Iterator[Metric]:
    """``session_ledger_database_primary`` (1, labelled with the node written to), each
    replica's replay lag in bytes and seconds, and the reads each side answered (with a
    read replica configured); nothing on a store without replication."""
    if status is None:
        return
    primary = GaugeMetricFamily(
        "session_ledger_database_primary",
        "1 for the PostgreSQL node this process writes to",
        labels=["node"],
    )
    primary.add_metric([status.primary], 1.0 if status.writable else 0.0)
    lag_bytes = GaugeMetricFamily(
        "session_ledger_replica_lag_bytes",
        "WAL the replica has not replayed yet",
        labels=["replica", "sync_state"],
    )
    lag_seconds = GaugeMetricFamily(
        "session_ledger_replica_lag_seconds",
        "How long ago the replica replayed what the primary had flushed then",
        labels=["replica", "sync_state"],
    )
    for replica in status.replicas:
        labels = [replica.name, replica.sync_state or ""]
        lag_bytes.add_metric(labels, float(replica.replay_lag_bytes or 0))
        lag_seconds.add_metric(labels, float(replica.replay_lag_seconds or 0.0))
    yield from (primary, lag_bytes, lag_seconds)
    if reads is not None:
        served = CounterMetricFamily(
            "session_ledger_reads",
            "Reads that may use the replica, by which side answered",
            labels=["served_by"],
        )
        for side, count in sorted(reads.items()):
            served.add_metric([side], float(count))
        yield served
