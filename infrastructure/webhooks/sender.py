"""The webhook sender: attempts due deliveries, concurrently, each endpoint on its own.

It is an asyncio loop on a thread of its own, working only while the delivery worker's
lease is held (:mod:`infrastructure.webhooks.worker`). Each endpoint has at most
``per_endpoint`` requests in flight; a slow or dead endpoint fills only its own slots, so
the others (and the API, which never waits for any of this) go on. Database calls and name
resolution run on small thread pools, never on the loop.

Under load the sender works in rounds: it looks for due deliveries at most every
``gather_seconds`` (at once after a quiet spell), up to ``queue_limit`` per endpoint, and
queues them in memory; each endpoint's queue is sent from as its requests' answers come in,
without waiting for the next round. The answers that came in during one interval are
recorded in one transaction. A delivery stays claimed (never picked again) from the round
that queued it until its answer is recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from domain.errors import SessionLedgerError
from infrastructure.projections.lease import WorkerLease
from infrastructure.sql import Row
from infrastructure.webhooks.addresses import AddressRefused, is_literal, parse_url, resolve
from infrastructure.webhooks.deliveries import Attempted, DeliveryStore, Due
from infrastructure.webhooks.endpoints import EndpointStore, now_ms
from infrastructure.webhooks.http import Connections, Outcome, post
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
    gather_seconds: float = 0.05
    queue_limit: int = 256


@dataclass
class _Lane:
    """One endpoint's work in the sender: its row and live secrets as of the last round, the
    deliveries it has claimed (queued, in flight or being recorded), its queue and how many
    of its requests are in flight."""

    row: Row
    secrets: list[str]
    claimed: set[str] = field(default_factory=set)
    queue: deque[Due] = field(default_factory=deque)
    sending: int = 0

    def drop_queue(self) -> None:
        """Forget what is queued (the deliveries stay pending in the table)."""
        for delivery in self.queue:
            self.claimed.discard(delivery.message_id)
        self.queue.clear()


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
        self._lanes: dict[int, _Lane] = {}
        self._connections = Connections()
        self._tasks: set[asyncio.Task[None]] = set()
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
        while not self._stopping.is_set():
            self._wake.clear()
            if self._may_send():
                try:
                    await self._dispatch()
                    self.last_error = None
                except Exception as error:
                    self.last_error = f"{type(error).__name__}: {error}"
                    logger.exception("webhook sender failed; retrying")
            else:
                for lane in self._lanes.values():
                    lane.drop_queue()
            dispatched_at = self._loop.time()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.policy.poll_seconds):
                    await self._wake.wait()
            pause = self.policy.gather_seconds - (self._loop.time() - dispatched_at)
            if pause > 0:  # a round per interval under load, not one per answer
                await asyncio.sleep(pause)
        tasks = [*self._tasks, recorder]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._connections.close()

    async def _recorder(self) -> None:
        """Record the answers that came in, many per transaction (one commit each time):
        with attempts in flight for many deliveries, a commit per answer would be the limit."""
        assert self._answered is not None
        while True:
            await self._answered.wait()
            await asyncio.sleep(self.policy.gather_seconds)  # the answers of one interval
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

    def _may_send(self) -> bool:
        return not self._stopping.is_set() and (self.lease is None or self.lease.held)

    async def _dispatch(self) -> None:
        """One round: refresh the enabled endpoints, top their queues up, send."""
        self._connections.prune()
        rows = await self._call(self._db, self.endpoints.enabled_rows)
        enabled = {int(row["id"]) for row in rows}
        for endpoint_id, lane in self._lanes.items():
            if endpoint_id not in enabled:  # disabled or deleted since the last round
                lane.drop_queue()
        for row in rows:
            endpoint_id = int(row["id"])
            try:
                secrets = self.endpoints.signing_secrets(row)
            except SecretUnreadable as error:
                self.last_error = str(error)
                continue
            lane = self._lanes.setdefault(endpoint_id, _Lane(row, secrets))
            lane.row, lane.secrets = row, secrets
            room = self.policy.queue_limit - len(lane.queue) - lane.sending
            if room >= self.policy.per_endpoint:
                skip = set(lane.claimed)
                due = await self._call(self._db, self.deliveries.due, endpoint_id, room, skip)
                for delivery in due:
                    if delivery.message_id not in lane.claimed:
                        lane.claimed.add(delivery.message_id)
                        lane.queue.append(delivery)
            self._pump(lane)

    def _pump(self, lane: _Lane) -> None:
        """Start requests from the lane's queue while it has free slots."""
        while lane.queue and lane.sending < self.policy.per_endpoint and self._may_send():
            delivery = lane.queue.popleft()
            lane.sending += 1
            task = asyncio.create_task(self._attempt(lane, delivery))
            self._tasks.add(task)
            task.add_done_callback(self._finished(lane, delivery.message_id))

    def _finished(self, lane: _Lane, message_id: str) -> Callable[[asyncio.Task[None]], None]:
        def done(task: asyncio.Task[None]) -> None:
            lane.claimed.discard(message_id)
            self._tasks.discard(task)

        return done

    def _answer_in(self, lane: _Lane) -> None:
        """A request is over: its slot goes to the next queued delivery; an empty queue asks
        for the next round."""
        lane.sending -= 1
        self._pump(lane)
        if not lane.queue and self._wake is not None:
            self._wake.set()

    async def _attempt(self, lane: _Lane, delivery: Due) -> None:
        attempted_at = now_ms()
        try:
            outcome, address = await self._request(lane.row, lane.secrets, delivery, attempted_at)
        finally:
            self._answer_in(lane)
        # The delivery stays claimed until the answer is recorded, or, still pending in the
        # table, it would be picked again.
        recorded: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._answers.append(((delivery, outcome, attempted_at, address), recorded))
        assert self._answered is not None
        self._answered.set()
        await recorded

    async def _request(
        self, row: Row, secrets: list[str], delivery: Due, attempted_at: int
    ) -> tuple[Outcome, str | None]:
        """Resolve, check, sign and POST: what the attempt found, and the address used."""
        policy = self.policy
        try:
            target = parse_url(str(row["url"]), policy.allow_private)
            if is_literal(target):  # nothing to look up: no thread hop
                address = resolve(target, policy.allow_private)
            else:
                async with asyncio.timeout(policy.timeout_seconds):
                    address = await self._call(self._dns, resolve, target, policy.allow_private)
        except (SessionLedgerError, AddressRefused) as error:
            return Outcome(None, now_ms() - attempted_at, f"refused: {error}"[:500]), None
        except TimeoutError:
            return Outcome(None, now_ms() - attempted_at, "name resolution timed out"), None
        moment = datetime.now(UTC)
        body = delivery.body.encode()
        headers = {
            "webhook-id": delivery.message_id,
            "webhook-timestamp": str(int(moment.timestamp())),
            "webhook-signature": signature_header(secrets, delivery.message_id, moment, body),
        }
        remaining = max(policy.timeout_seconds - (now_ms() - attempted_at) / 1000, 0.001)
        outcome = await post(target, address, headers, body, remaining, self._connections)
        latency = now_ms() - attempted_at
        return Outcome(outcome.status, latency, outcome.error, outcome.response), address
