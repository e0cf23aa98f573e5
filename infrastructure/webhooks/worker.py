"""The delivery worker: the follower (messages from the log) and the sender (attempts).

The follower is the projection worker of :mod:`infrastructure.projections.worker` driving
the webhook projection, under a lease of its own (one worker per store, like the
projections; ``purpose="webhooks"``). After each catch-up it wakes the sender.

The sender is an asyncio loop on a thread of its own, working only while the lease is held.
Each endpoint has at most ``per_endpoint`` attempts in flight; a slow or dead endpoint fills
only its own slots, so the others (and the API, which never waits for any of this) go on.
Database calls and name resolution run on small thread pools, never on the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from eventsourcing.application import Application

from domain.errors import SessionLedgerError
from infrastructure.projections.engine import Projector
from infrastructure.projections.lease import WorkerLease
from infrastructure.projections.worker import ProjectionWorker
from infrastructure.sql import Row
from infrastructure.webhooks.addresses import AddressRefused, parse_url, resolve
from infrastructure.webhooks.deliveries import Attempted, DeliveryStore, Due
from infrastructure.webhooks.endpoints import EndpointStore, now_ms
from infrastructure.webhooks.http import Outcome, post
from infrastructure.webhooks.signing import SecretUnreadable, signature_header

logger = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class SendPolicy:
    """How the sender behaves."""

    timeout_seconds: float = 10.0
    per_endpoint: int = 16
    poll_seconds: float = 1.0
    allow_private: bool = False


class WebhookSender:
    """Attempts due deliveries, concurrently and per endpoint isolated."""

    def __init__(
        self,
        endpoints: EndpointStore,
        deliveries: DeliveryStore,
        policy: SendPolicy,
        lease: WorkerLease | None,
    ) -> None:
        self.endpoints = endpoints
        self.deliveries = deliveries
        self.policy = policy
        self.lease = lease
        self.last_error: str | None = None
        self._stopping = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._answers: list[tuple[Attempted, asyncio.Future[None]]] = []
        self._answered: asyncio.Event | None = None
        self._db = ThreadPoolExecutor(8, thread_name_prefix="webhook-db")
        self._dns = ThreadPoolExecutor(8, thread_name_prefix="webhook-dns")

    def wake(self) -> None:
        """Look for due deliveries now (callable from any thread)."""
        loop, event = self._loop, self._wake
        if loop is not None and event is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(event.set)

    def start(self) -> None:
        """Run in a daemon thread."""
        self._stopping.clear()
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self._main()), name="webhook-sender", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop; attempts in flight are abandoned (their deliveries stay pending)."""
        self._stopping.set()
        self.wake()
        if self._thread is not None:
            self._thread.join(timeout)

    async def _call(self, pool: ThreadPoolExecutor, work: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(pool, work, *args)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._answered = asyncio.Event()
        recorder = asyncio.create_task(self._recorder())
        busy: dict[int, set[str]] = {}
        tasks: set[asyncio.Task[None]] = set()
        while not self._stopping.is_set():
            self._wake.clear()
            if self.lease is None or self.lease.held:
                try:
                    await self._dispatch(busy, tasks)
                    self.last_error = None
                except Exception as error:
                    self.last_error = f"{type(error).__name__}: {error}"
                    logger.exception("webhook sender failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.policy.poll_seconds)
        for task in [*tasks, recorder]:
            task.cancel()
        await asyncio.gather(*tasks, recorder, return_exceptions=True)

    async def _recorder(self) -> None:
        """Record the answers that came in, many per transaction (one commit each time):
        with attempts in flight for many deliveries, a commit per answer would be the limit."""
        assert self._answered is not None
        while True:
            await self._answered.wait()
            self._answered.clear()
            batch, self._answers = self._answers, []
            if not batch:
                continue
            try:
                await self._call(self._db, self.deliveries.record, [a for a, _ in batch])
            except Exception as error:  # the deliveries stay pending and are attempted again
                self.last_error = f"{type(error).__name__}: {error}"
                logger.exception("could not record webhook attempts")
            for _, done in batch:
                if not done.done():
                    done.set_result(None)

    async def _dispatch(self, busy: dict[int, set[str]], tasks: set[asyncio.Task[None]]) -> None:
        for row in await self._call(self._db, self.endpoints.enabled_rows):
            endpoint_id = int(row["id"])
            flying = busy.setdefault(endpoint_id, set())
            free = self.policy.per_endpoint - len(flying)
            if free <= 0:
                continue
            due = await self._call(self._db, self.deliveries.due, endpoint_id, free, set(flying))
            if not due:
                continue
            try:
                secrets = self.endpoints.signing_secrets(row)
            except SecretUnreadable as error:
                self.last_error = str(error)
                continue
            for delivery in due:
                flying.add(delivery.message_id)
                task = asyncio.create_task(self._attempt(row, secrets, delivery))
                tasks.add(task)
                task.add_done_callback(self._finished(flying, tasks, delivery.message_id))

    def _finished(
        self, flying: set[str], tasks: set[asyncio.Task[None]], message_id: str
    ) -> Callable[[asyncio.Task[None]], None]:
        def done(task: asyncio.Task[None]) -> None:
            flying.discard(message_id)
            tasks.discard(task)
            if self._wake is not None:
                self._wake.set()

        return done

    async def _attempt(self, row: Row, secrets: list[str], delivery: Due) -> None:
        policy = self.policy
        attempted_at = now_ms()
        address: str | None = None
        try:
            target = parse_url(str(row["url"]), policy.allow_private)
            address = await asyncio.wait_for(
                self._call(self._dns, resolve, target, policy.allow_private),
                policy.timeout_seconds,
            )
        except (SessionLedgerError, AddressRefused) as error:
            outcome = Outcome(None, now_ms() - attempted_at, f"refused: {error}"[:500])
        except TimeoutError:
            outcome = Outcome(None, now_ms() - attempted_at, "name resolution timed out")
        else:
            moment = datetime.now(UTC)
            body = delivery.body.encode()
            headers = {
                "webhook-id": delivery.message_id,
                "webhook-timestamp": str(int(moment.timestamp())),
                "webhook-signature": signature_header(secrets, delivery.message_id, moment, body),
            }
            remaining = max(policy.timeout_seconds - (now_ms() - attempted_at) / 1000, 0.001)
            outcome = await post(target, address, headers, body, remaining)
            outcome = Outcome(
                outcome.status, now_ms() - attempted_at, outcome.error, outcome.response
            )
        # The slot stays taken until the answer is recorded, or the delivery, still pending
        # in the table, would be claimed again.
        recorded: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._answers.append(((delivery, outcome, attempted_at, address), recorded))
        assert self._answered is not None
        self._answered.set()
        await recorded


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
