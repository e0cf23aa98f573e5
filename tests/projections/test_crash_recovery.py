"""A projection worker killed at random moments, then restarted, ends where a clean rebuild does.

Given a few thousand events and projections reset to nothing, ``session-ledger projections
run`` is SIGKILLed several times while it works through them (each time soon after it has
committed a batch, so the kill lands inside the run, often inside a transaction) and started
again. After every kill the tables must agree with the position recorded beside them; at the
end every view must hold exactly the rows a clean rebuild produces.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from infrastructure.clock import SettableClock
from infrastructure.container import Services
from tests.helpers import services_for
from tests.projections.support import (
    START,
    all_rows,
    console_script,
    count,
    differences,
    rebuild_all,
    reset_projections,
    rows_of,
    session_events,
)
from tests.projections.traffic import produce_history

EXE = console_script()
pytestmark = [
    pytest.mark.slow,  # a worker process killed and restarted
    pytest.mark.skipif(not EXE, reason="session-ledger is not installed"),
]

SESSIONS, ROUNDS = 64, 3  # about 3,500 events: seven batches of 500 per projection
KILLS = 5
PROGRESS_TIMEOUT = 30.0  # seconds for a started worker to commit its first batch
CATCH_UP_TIMEOUT = 60.0


class Worker:
    """``session-ledger projections run`` as a child process, its output in a file."""

    def __init__(self, url: str, log: Path) -> None:
        self.log = log
        with log.open("a") as output:
            self.process = subprocess.Popen(
                [EXE, "projections", "run"],
                env={**os.environ, "SESSION_LEDGER_DATABASE_URL": url},
                stdout=output,
                stderr=subprocess.STDOUT,
            )

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        """SIGTERM; SIGKILL if that is not heeded (a known bug, see test_worker_and_ops)."""
        if self.alive():
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.kill()

    def output(self) -> str:
        return self.log.read_text()[-3000:]


def positions(services: Services) -> list[int]:
    return [p.position() for p in services.projectors]


def check_tables_match_positions(services: Services) -> None:
    """What each projection's tables hold is exactly the events up to its position."""
    sessions_at, analytics_at, _ = positions(services)  # (user_sign_ins: checked by rebuild)
    events = session_events(services)
    projected_versions = sum(
        int(dict(r)["version"]) for r in rows_of(services.views, "read_sessions")
    )
    # A session's version counts its events, so the versions add up to the events folded.
    assert projected_versions == sum(1 for p, _ in events if p <= sessions_at)
    counted = sum(int(dict(r)["events"]) for r in rows_of(services.views, "analytics_sessions"))
    assert counted == sum(1 for p, _ in events if p <= analytics_at)
    switches = sum(
        1 for p, e in events if p <= analytics_at and type(e).__name__ == "ActiveSignInSwitched"
    )
    assert count(services.views, "analytics_switches") == switches


def wait_for(condition: str, check: object, worker: Worker, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert worker.alive(), f"the worker died before {condition}:\n{worker.output()}"
        assert time.monotonic() < deadline, f"no {condition} in {timeout}s:\n{worker.output()}"
        time.sleep(0.002)


def test_a_worker_killed_mid_run_and_restarted_ends_as_a_clean_rebuild(
    durable_database_url: str, tmp_path: Path
) -> None:
    url = durable_database_url
    # Given a few thousand events, and projections reset to nothing
    with services_for(
        url, clock=SettableClock(START), postgres_pool_size=8, rate_limits=False
    ) as services:
        head = produce_history(services, SESSIONS, ROUNDS, threads=8)
        reset_projections(services.views)
    assert head > 3000
    with services_for(url, load_demo=False) as services:
        assert positions(services) == [0, 0, 0]
        assert [p.status().generation for p in services.projectors] == [1, 1, 1]
        rng = random.Random()
        log = tmp_path / "worker.log"
        kills: list[tuple[float, list[int]]] = []

        # When the worker is killed at random moments while it catches up, and restarted
        for _ in range(KILLS):
            before = positions(services)
            worker = Worker(url, log)
            wait_for(
                "progress",
                lambda b=before: positions(services) != b or min(b) == head,
                worker,
                PROGRESS_TIMEOUT,
            )
            delay = rng.uniform(0.0, 0.03)
            time.sleep(delay)
            worker.kill()
            after = positions(services)
            kills.append((delay, after))
            assert all(a >= b for a, b in zip(after, before, strict=True)), kills
            assert all(a <= head for a in after), kills
            check_tables_match_positions(services)
        mid_run = [k for k in kills if min(k[1]) < head]
        assert len(mid_run) >= 3, f"too few kills landed before the end: {kills}"

        # And finally left to finish
        worker = Worker(url, log)
        try:
            wait_for(
                "catch-up",
                lambda: all(p.status().lag == 0 for p in services.projectors),
                worker,
                CATCH_UP_TIMEOUT,
            )
        finally:
            worker.stop()
        assert positions(services) == [head] * len(services.projectors)
        check_tables_match_positions(services)
        recovered = all_rows(services)

        # Then every view holds exactly what a clean rebuild makes
        rebuild_all(services)
        rebuilt = all_rows(services)
    assert recovered == rebuilt, differences(recovered, rebuilt)
    assert len(rebuilt["read_sessions"]) == SESSIONS
    assert len(rebuilt["analytics_switches"]) == SESSIONS * ROUNDS
