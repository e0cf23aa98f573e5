"""The background worker that keeps every projection caught up with the event log.

It sleeps on a subscription to the log (PostgreSQL LISTEN/NOTIFY, the SQLite polling
subscription, or the in-memory recorder's own) and, when a notification beyond what it has
processed arrives, catches every projection up in batches. Requests that write catch the
session read model up themselves (read-your-writes); the worker covers everything else:
analytics, writes from other processes, and recovery after a crash.

When several processes serve one store, only the worker holding the lease (see
``lease``) works; the others wait to take over.

Under a steady stream of events the worker does not catch up once per event: a catch-up
comes at most every ``gather_seconds`` (the first after a quiet spell at once), so each
covers the events of that interval in one read and one transaction. Per-event catch-ups
cost three transactions and a dozen statements for each event; gathered, a batch of tens.

A wake-up can be lost (a NOTIFY sent while the listening connection was being replaced at a
failover): the worker never waits on one subscription longer than ``recheck_seconds``, then
catches up from the log and subscribes again, so a missed wake-up delays a view by that
much at most instead of until the next write.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

from eventsourcing.application import Application

from infrastructure.outage import store_unavailable
from infrastructure.projections.engine import STATE_TABLE, Projector
from infrastructure.projections.event_log import Decoded
from infrastructure.projections.lease import WorkerLease
from infrastructure.sql import select_in

logger = logging.getLogger(__name__)

RETRY_SECONDS = 1.0
LEASE_RETRY_SECONDS = 2.0
RECHECK_SECONDS = 5.0
GATHER_SECONDS = 0.05


class ProjectionWorker:
    """Catches projections up whenever the log grows, until stopped."""

    def __init__(
        self,
        app: Application[Any],
        projectors: Sequence[Projector],
        lease: WorkerLease | None = None,
        recheck_seconds: float = RECHECK_SECONDS,
        gather_seconds: float = GATHER_SECONDS,
    ) -> None:
        self.app = app
        self.recheck_seconds = recheck_seconds
        self.gather_seconds = gather_seconds
        self.projectors = list(projectors)
        self.lease = lease
        self.last_error: str | None = None
        self._stopping = threading.Event()
        self._subscription: Any = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def catch_up(self) -> int:
        """Catch every projection up to the head; return the lowest position reached."""
        return catch_up_together(self.projectors)

    def run(self) -> None:
        """Work in this thread until :meth:`stop` is called."""
        while not self._stopping.is_set():
            try:
                if self.lease is not None and not self.lease.acquire():
                    # Another process's worker is doing this work; be ready to take over.
                    # The store answered, so an error from before (an outage, a failover)
                    # is over: /health must not keep reporting it.
                    self.last_error = None
                    self._stopping.wait(LEASE_RETRY_SECONDS)
                    continue
                done = self.catch_up()
                caught_up_at = time.monotonic()
                self.last_error = None
                with self.app.recorder.subscribe(gt=done) as subscription:
                    with self._lock:
                        self._subscription = subscription
                    if self._stopping.is_set():
                        break
                    recheck = threading.Timer(self.recheck_seconds, subscription.stop)
                    recheck.daemon = True
                    recheck.start()
                    try:
                        for notification in subscription:
                            if self.lease is not None and not self.lease.still_held():
                                break
                            if notification.id <= done:
                                continue  # covered by a catch-up since it was sent
                            pause = self.gather_seconds - (time.monotonic() - caught_up_at)
                            if pause > 0 and self._stopping.wait(pause):
                                break
                            done = self.catch_up()
                            caught_up_at = time.monotonic()
                    finally:
                        recheck.cancel()
            except Exception as error:
                self.last_error = f"{type(error).__name__}: {error}"
                if store_unavailable(error):  # an outage: one line a second, not a traceback
                    logger.warning("projection worker: store unavailable; retrying in %ss: %s",
                                   RETRY_SECONDS, " ".join(str(error).split())[:200])  # fmt: skip
                else:
                    logger.exception("projection worker failed; retrying in %ss", RETRY_SECONDS)
                self._stopping.wait(RETRY_SECONDS)
            finally:
                with self._lock:
                    self._subscription = None

    def start(self) -> None:
        """Run in a daemon thread."""
        self._thread = threading.Thread(target=self.run, name="projection-worker", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop, and wait for the thread if there is one."""
        self._stopping.set()
        with self._lock:
            if self._subscription is not None:
                self._subscription.stop()
        if self._thread is not None:
            self._thread.join(timeout)
        if self.lease is not None:
            self.lease.release()


def catch_up_together(projectors: Sequence[Projector]) -> int:
    """Catch projections of one app and one database up together: each batch of the log is
    read and decoded once and applied to all of them in one transaction (one commit where
    each would take its own). Each still locks its own position row and skips what it has
    already applied, so a request catching one of them up meanwhile applies nothing twice.
    Returns the lowest position reached."""
    first = projectors[0]
    if any(p.db is not first.db or p.app is not first.app for p in projectors):
        return min(p.catch_up() for p in projectors)
    with first.db.read() as cursor:
        state = first.db.table(STATE_TABLE)
        names = [p.name for p in projectors]
        rows = select_in(cursor, f"SELECT position FROM {state}", "name", names)
    position = min(int(row["position"]) for row in rows)
    while True:
        notifications = first.log.read(position)
        if not notifications:
            return position
        decoded: Decoded = {}
        first.log.decode(notifications, decoded)  # before the write transaction
        prepared = [p.prepare(notifications, decoded) for p in projectors]
        with first.db.transaction(immediate=True) as cursor:
            reached = [
                p.apply_within(cursor, notifications, decoded, ahead)
                for p, ahead in zip(projectors, prepared, strict=True)
            ]
        position = min(reached)
        if len(notifications) < first.log.batch_size:
            return position
