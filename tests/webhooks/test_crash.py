"""A delivery worker SIGKILLed mid-delivery loses nothing and creates no message twice.

Given a few hundred events and an endpoint, ``session-ledger webhooks run`` is SIGKILLed
several times while it creates messages and delivers them, and started again. After every
kill, each message belongs to an event the follower's committed position covers; at the end
the messages are exactly those a clean follower makes from the same log, there is one
delivery per message, and the receiver has accepted every message id (repeats allowed:
delivery is at-least-once).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from application.request_context import ContextMapper
from infrastructure.clock import SettableClock
from infrastructure.persistence import sql_database_for
from infrastructure.projections.engine import Projector
from infrastructure.sql import SqlDatabase
from infrastructure.webhooks.follower import WebhookProjection
from tests.helpers import services_for
from tests.projections.support import START, console_script
from tests.projections.traffic import produce_history
from tests.webhooks.receiver import Receiver, running, wait_for
from tests.webhooks.support import FAST, WEBHOOK_KEY

pytestmark = pytest.mark.slow  # processes killed and restarted

EXE = console_script()
KILLS = 4


def _messages(db: SqlDatabase) -> dict[str, tuple[int, str]]:
    with db.transaction(commit=False) as cursor:
        cursor.execute(f"SELECT id, position, body FROM {db.table('webhook_messages')}")
        return {str(r["id"]): (int(r["position"]), str(r["body"])) for r in cursor.fetchall()}


def _deliveries(db: SqlDatabase) -> list[dict[str, Any]]:
    with db.transaction(commit=False) as cursor:
        cursor.execute(f"SELECT * FROM {db.table('webhook_deliveries')}")
        return [dict(r) for r in cursor.fetchall()]


class Worker:
    """``session-ledger webhooks run`` as a child process."""

    def __init__(self, url: str, log: Path) -> None:
        env = {
            **os.environ,
            "SESSION_LEDGER_DATABASE_URL": url,
            "SESSION_LEDGER_WEBHOOK_KEY": WEBHOOK_KEY,
            "SESSION_LEDGER_WEBHOOK_ALLOW_PRIVATE_ADDRESSES": "true",
            "SESSION_LEDGER_WEBHOOK_POLL_SECONDS": "0.05",
            "SESSION_LEDGER_WEBHOOK_RETRY_BASE_SECONDS": "0.05",
            "SESSION_LEDGER_WEBHOOK_RETRY_MAX_SECONDS": "0.2",
            "SESSION_LEDGER_WEBHOOK_MAX_ATTEMPTS": "50",
            # Slow enough that each worker dies with deliveries left to do: a sender with
            # its queue full sends as fast as the receiver answers.
            "SESSION_LEDGER_WEBHOOK_CONCURRENCY_PER_ENDPOINT": "2",
        }
        with log.open("a") as output:
            self.process = subprocess.Popen(
                [EXE, "webhooks", "run"], env=env, stdout=output, stderr=subprocess.STDOUT
            )
        self.log = log

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


def test_a_worker_killed_mid_delivery_loses_nothing_and_duplicates_no_message(
    durable_database_url: str, tmp_path: Path
) -> None:
    url = durable_database_url
    log = tmp_path / "worker.log"
    with (
        running(Receiver(delay=0.02)) as receiver,
        services_for(
            url, clock=SettableClock(START), rate_limits=False, postgres_pool_size=8, **FAST
        ) as services,
    ):
        hooks = services.webhooks
        endpoint, secret = hooks.create_endpoint(receiver.url, None)
        receiver.secrets.append(secret)
        head = produce_history(services, sessions=12, rounds=2, threads=4)
        assert head > 300
        views = services.views
        rng = random.Random()
        landed = 0

        for _ in range(KILLS):
            before = len(receiver.accepted_ids())
            worker = Worker(url, log)
            try:

                def progressed(b: int = before) -> bool:
                    return len(receiver.accepted_ids()) > b

                wait_for(progressed, 60, "delivery progress")
                time.sleep(rng.uniform(0.0, 0.05))
            finally:
                worker.kill()
            position = hooks.projector.position()
            stored = _messages(views)
            assert all(p <= position for p, _ in stored.values())
            delivered = {str(d["message_id"]) for d in _deliveries(views)}
            assert delivered == set(stored)  # one delivery per message, made with it
            if len(receiver.accepted_ids()) < len(stored) or position < head:
                landed += 1
        assert landed >= 2, "too few kills landed before the end"

        worker = Worker(url, log)
        try:
            wait_for(lambda: hooks.status()["lag"] == 0, 60, "the follower to catch up")
            wait_for(
                lambda: receiver.accepted_ids() == set(_messages(views)), 120, "every delivery"
            )
            wait_for(
                lambda: all(d["status"] == "delivered" for d in _deliveries(views)), 60,
                "every delivery recorded",
            )  # fmt: skip
        finally:
            worker.stop()

        recovered = _messages(views)
        clean_db = sql_database_for(None)
        try:
            mapper = services.sessions.mapper
            assert isinstance(mapper, ContextMapper)
            clean = Projector(services.sessions, clean_db, WebhookProjection(mapper.payload))
            clean.ensure()
            clean.catch_up()
            assert recovered == _messages(clean_db)
        finally:
            clean_db.close()
        deliveries = _deliveries(views)
        assert len(deliveries) == len(recovered)
        assert {int(d["endpoint_id"]) for d in deliveries} == {endpoint.id}
        assert all(r.verified_by == [0] for r in receiver.requests)
