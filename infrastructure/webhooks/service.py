"""What the API and the CLI ask of webhooks, in one place, built from the settings."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from eventsourcing.application import Application

from application.errors import InvalidRequest, WebhooksNotConfigured
from infrastructure.projections.engine import Projector
from infrastructure.projections.lease import WorkerLease
from infrastructure.projections.projection import Payload
from infrastructure.settings import Settings
from infrastructure.sql import SqlDatabase
from infrastructure.webhooks.deliveries import DeliveryStore, RetryPolicy
from infrastructure.webhooks.endpoints import Endpoint, EndpointStore, now_ms
from infrastructure.webhooks.examples import catalogue
from infrastructure.webhooks.follower import WebhookProjection
from infrastructure.webhooks.sender import SendPolicy, WebhookSender
from infrastructure.webhooks.signing import SecretBox
from infrastructure.webhooks.worker import WebhookWorker


def retry_policy(settings: Settings) -> RetryPolicy:
    """The retry schedule and disabling rule the settings ask for."""
    return RetryPolicy(
        max_attempts=settings.webhook_max_attempts,
        base_seconds=settings.webhook_retry_base_seconds,
        max_seconds=settings.webhook_retry_max_seconds,
        disable_after_failures=settings.webhook_disable_after_failures,
        disable_after_seconds=settings.webhook_disable_after_seconds,
    )


class WebhookService:
    """Endpoints, deliveries, replay, status, and the worker that delivers."""

    def __init__(
        self, settings: Settings, app: Application[Any], db: SqlDatabase, payload: Payload
    ) -> None:
        self.settings = settings
        self.app = app
        self.db = db
        key = settings.webhook_key.get_secret_value() if settings.webhook_key else None
        self.box = SecretBox(key)
        self.projector = Projector(app, db, WebhookProjection(payload))
        self.endpoint_store = EndpointStore(
            db, self.box, self.head, lambda: settings.webhook_allow_private_addresses
        )
        self.delivery_store = DeliveryStore(db, retry_policy(settings))
        self._worker: WebhookWorker | None = None

    @property
    def configured(self) -> bool:
        """True when SESSION_LEDGER_WEBHOOK_KEY is set."""
        return self.box.configured

    def ensure(self) -> None:
        """Create the tables if missing."""
        self.projector.ensure()

    def head(self) -> int:
        """The position of the newest event of the log."""
        return self.app.recorder.max_notification_id() or 0

    # The worker ----------------------------------------------------------------------

    @property
    def worker(self) -> WebhookWorker:
        """The delivery worker (built on first use)."""
        if self._worker is None:
            sender = WebhookSender(
                self.endpoint_store,
                self.delivery_store,
                SendPolicy(
                    timeout_seconds=self.settings.webhook_timeout_seconds,
                    per_endpoint=self.settings.webhook_concurrency_per_endpoint,
                    poll_seconds=self.settings.webhook_poll_seconds,
                    allow_private=self.settings.webhook_allow_private_addresses,
                ),
                None,
            )
            lease = WorkerLease(self.db.datastore, purpose="webhooks")
            sender.lease = lease
            self._worker = WebhookWorker(self.app, self.projector, lease, sender)
        return self._worker

    def start(self) -> None:
        """Deliver in background threads (needs the webhook key)."""
        if not self.configured:
            raise WebhooksNotConfigured
        self.worker.start()

    def stop(self) -> None:
        """Stop delivering, if it was started."""
        if self._worker is not None:
            self._worker.stop()

    # Operators -----------------------------------------------------------------------

    def catalogue(self) -> list[dict[str, Any]]:
        """Every event type with a description and an example body."""
        return catalogue()

    def create_endpoint(
        self, url: str, event_types: Sequence[str] | None, enabled: bool = True
    ) -> tuple[Endpoint, str]:
        """A new endpoint and its secret (shown only now)."""
        if not self.configured:
            raise WebhooksNotConfigured
        return self.endpoint_store.create(url, event_types, enabled)

    def endpoints(self) -> list[Endpoint]:
        """Every endpoint."""
        return self.endpoint_store.all()

    def endpoint(self, endpoint_id: int) -> Endpoint:
        """One endpoint."""
        return self.endpoint_store.get(endpoint_id)

    def update_endpoint(
        self,
        endpoint_id: int,
        url: str | None = None,
        event_types: Sequence[str] | None = None,
        enabled: bool | None = None,
    ) -> Endpoint:
        """Change an endpoint; enabling clears an automatic disable."""
        return self.endpoint_store.update(endpoint_id, url, event_types, enabled)

    def rotate_secret(self, endpoint_id: int, overlap_seconds: float) -> tuple[Endpoint, str]:
        """A new secret (shown only now); the old one still signs during the overlap."""
        return self.endpoint_store.rotate(endpoint_id, overlap_seconds)

    def replay(
        self,
        endpoint_id: int,
        since_position: int | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> int:
        """Deliver again (or back-fill) a window of history to an endpoint, with the same ids."""
        if since_position is None and start is None:
            raise InvalidRequest("Give a position to replay from, or a start time.")
        if start is not None and end is not None and end <= start:
            raise InvalidRequest("The end of the window must come after its start.")
        endpoint = self.endpoint_store.get(endpoint_id)
        self.projector.catch_up()  # every message up to now exists before the window is read
        count = self.delivery_store.replay(
            endpoint_id, endpoint.event_types, since_position, start, end
        )
        if self._worker is not None:
            self._worker.sender.wake()
        return count

    def deliveries(
        self, endpoint_id: int, status: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """An endpoint's deliveries, newest first."""
        self.endpoint_store.get(endpoint_id)
        return self.delivery_store.deliveries(endpoint_id, status, limit)

    def attempts(self, endpoint_id: int, message_id: str) -> list[dict[str, Any]]:
        """Every attempt of one message to one endpoint."""
        self.endpoint_store.get(endpoint_id)
        return self.delivery_store.attempts(endpoint_id, message_id)

    # Observability -------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """Follower position and lag, each endpoint's backlog, failures and state."""
        head = self.head()
        try:
            position = self.projector.position()
        except LookupError:  # its state row was removed (tests reset projections so)
            position = 0
        summary: dict[int, dict[str, Any]] = {}
        now = now_ms()
        for row in self.delivery_store.pending_summary():
            entry = summary.setdefault(int(row["endpoint_id"]), {})
            entry[str(row["status"])] = int(row["n"])
            if row["status"] == "pending" and row["oldest"] is not None:
                entry["oldest_pending_seconds"] = max(now - int(row["oldest"]), 0) / 1000
        endpoints = []
        for e in self.endpoint_store.all():
            entry = summary.get(e.id, {})
            endpoints.append(
                {
                    "id": str(e.id),  # no URL: /health is public, and URLs may hold tokens
                    "enabled": e.enabled,
                    "disabled_at": e.disabled_at,
                    "disabled_reason": e.disabled_reason,
                    "pending": entry.get("pending", 0),
                    "failed": entry.get("failed", 0),
                    "oldest_pending_seconds": entry.get("oldest_pending_seconds", 0.0),
                    "attempts_total": e.attempts_total,
                    "failures_total": e.failures_total,
                    "delivered_total": e.delivered_total,
                }
            )
        worker = self._worker
        return {
            "configured": self.configured,
            "position": position,
            "head": head,
            "lag": max(head - position, 0),
            # Of a delivery worker in this process (a thread); `serve`'s child reports in its log.
            "worker_error": (worker.last_error or worker.sender.last_error) if worker else None,
            "endpoints": endpoints,
            "disabled_endpoints": sum(1 for e in endpoints if not e["enabled"]),
        }
