"""Operator routes: health (with projection and replica lag) and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from api.deps import ServicesDep
from api.envelope import failure, success
from api.webhook_metrics import WebhookCollector
from infrastructure.container import Services
from infrastructure.outage import probe
from infrastructure.replication import replication_status
from infrastructure.replication_metrics import replication_metrics

PROBE_SECONDS = 2

router = APIRouter(tags=["Operations"])


def projection_report(services: Services) -> list[dict[str, object]]:
    """Position, head and lag of each projection."""
    report: list[dict[str, object]] = []
    for projector in services.projectors:
        status = projector.status()
        report.append(
            {
                "name": status.name,
                "generation": status.generation,
                "position": status.position,
                "head": status.head,
                "lag": status.lag,
                "rebuilding": status.rebuilding,
            }
        )
    return report


def follower_report(services: Services) -> dict[str, object] | None:
    """Where this process's log follower has read to, how many of other processes' events
    it applied to cached sessions, and its last error (None where none runs: SQLite, or
    ``SESSION_LEDGER_FOLLOW_WRITES`` off)."""
    follower = services.follower
    if follower is None or not follower.started:
        return None
    return {
        "position": follower.position,
        "applied": follower.applied,
        "error": follower.last_error,
    }


def database_report(services: Services) -> dict[str, object] | None:
    """The PostgreSQL node written to, each replica's lag, and how many reads the replica
    and the primary answered (None on SQLite)."""
    status = replication_status(services.sql)
    if status is None:
        return None
    reads = services.replica_reads
    return {**status.as_dict(), "reads": dict(reads.served) if reads else None}


def store_problems(services: Services) -> list[str]:
    """What does not answer: the event store, and the views database if it is another."""
    stores = [("database", services.sql)]
    if services.views is not services.sql:
        stores.append(("views database", services.views))
    timeout = min(PROBE_SECONDS, services.settings.database_timeout_seconds)
    problems = []
    for name, store in stores:
        found = probe(store.datastore, timeout)
        if not found.ok:
            problems.append(f"{name} ({found.detail})")
    return problems


@router.get("/.well-known/jwks.json", summary="Public keys of session tokens")
def jwks(services: ServicesDep) -> JSONResponse:
    """The JSON Web Key Set that verifies tokens from GET /session/token (not enveloped)."""
    return JSONResponse(services.keys.jwks(), headers={"Cache-Control": "public, max-age=60"})


@router.get("/health", summary="Health and projection lag")
def health(services: ServicesDep) -> JSONResponse:
    """200 with each projection's position and lag, the worker's last error if any and
    where the log follower is;
    503 SERVICE_UNAVAILABLE, at once, naming what is down when the store does not answer
    (probed on a connection of its own, never waiting on the pool)."""
    down = store_problems(services)
    if down:
        response = failure(503, "SERVICE_UNAVAILABLE", "Down: " + "; ".join(down))
        response.headers["Retry-After"] = str(services.settings.database_timeout_seconds)
        return response
    data = {
        "status": "ok",
        "projections": projection_report(services),
        "worker_error": services.worker.last_error,
        "follower": follower_report(services),
        "database": database_report(services),
        "webhooks": services.webhooks.status(),
    }
    return success(data, None)


class _ProjectionCollector(Collector):
    def __init__(self, services: Services) -> None:
        self._services = services

    def collect(self):  # type: ignore[no-untyped-def]
        position = GaugeMetricFamily(
            "session_ledger_projection_position",
            "Last event position projected",
            labels=["projection"],
        )
        lag = GaugeMetricFamily(
            "session_ledger_projection_lag_events",
            "Events recorded but not yet projected",
            labels=["projection"],
        )
        head = GaugeMetricFamily("session_ledger_event_log_head", "Position of the newest event")
        latest = 0
        for item in projection_report(self._services):
            position.add_metric([str(item["name"])], float(str(item["position"])))
            lag.add_metric([str(item["name"])], float(str(item["lag"])))
            latest = max(latest, int(str(item["head"])))
        head.add_metric([], float(latest))
        yield from (position, lag, head)
        reads = self._services.replica_reads
        yield from replication_metrics(
            replication_status(self._services.sql), reads.served if reads else None
        )


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
def metrics(services: ServicesDep) -> Response:
    """Projection positions, lag and the log head in Prometheus' text format."""
    registry = CollectorRegistry()
    registry.register(_ProjectionCollector(services))
    registry.register(WebhookCollector(services))
    return Response(generate_latest(registry), media_type="text/plain; version=0.0.4")
