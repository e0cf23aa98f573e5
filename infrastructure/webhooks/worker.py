"""The delivery worker: the follower (messages from the log) and the sender (attempts).

The follower is the projection worker of :mod:`infrastructure.projections.worker` driving
the webhook projection, under a lease of its own (one worker per store, like the
projections; ``purpose="webhooks"``). After each catch-up it wakes the sender
(:mod:`infrastructure.webhooks.sender`).
"""

from __future__ import annotations

from typing import Any

from eventsourcing.application import Application

from infrastructure.projections.engine import Projector
from infrastructure.projections.lease import WorkerLease
from infrastructure.projections.worker import ProjectionWorker
from infrastructure.webhooks.sender import WebhookSender


class WebhookWorker(ProjectionWorker):
    """The follower, which wakes the sender whenever it has created messages."""

    def __init__(
        self,
        app: Application[Any],
        projector: Projector,
        lease: WorkerLease | None,
        sender: WebhookSender,
    ) -> None:
        super().__init__(app, [projector], lease)
        self.sender = sender

    def catch_up(self) -> int:
        """Create messages up to the head, then have the sender look for due deliveries."""
        done = super().catch_up()
        self.sender.wake()
        return done

    def start(self) -> None:
        """Run the follower and the sender."""
        self.sender.start()
        super().start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop both (the lease is released last)."""
        self.sender.stop(timeout)
        super().stop(timeout)
