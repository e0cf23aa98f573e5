"""Keeping projections up to date, and operating them: the worker, subscriptions, CLI, ops routes.

- the worker catches analytics up after HTTP commands, first at start, then on each write;
- a subscription to the log delivers events another process wrote, within a second;
- ``session-ledger projections status|rebuild`` report, rebuild, and refuse unknown names;
- ``GET /health`` and ``GET /metrics`` report each projection's position and lag;
- with ``views_database_url`` the projections live in the other database only.
"""

from __future__ import annotations

import ctypes
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from infrastructure.clock import SettableClock
from infrastructure.container import Services
from tests.conftest import fresh_postgres_url
from tests.helpers import ACME, ALICE, BOB, services_for
from tests.projections.support import (
    START,
    console_script,
    count,
    tables_and_views,
)

EXE = console_script()
CATCH_UP_TIMEOUT = 10.0
PROJECTIONS = ["sessions", "analytics", "user_sign_ins"]
ENVELOPE = {"status", "message", "data", "session", "errors"}

User = tuple[str, str, str]
Json = dict[str, Any]


@pytest.fixture
def services(database_url: str) -> Iterator[Services]:
    with services_for(database_url, clock=SettableClock(START), rate_limits=False) as built:
        yield built


@pytest.fixture
def durable_services(durable_database_url: str) -> Iterator[Services]:
    with services_for(durable_database_url, clock=SettableClock(START), rate_limits=False) as built:
        yield built


@pytest.fixture
def browser(services: Services) -> Iterator[TestClient]:
    with TestClient(create_app(services=services), base_url="https://testserver") as client:
        yield client


def ok(response: httpx.Response) -> Json:
    assert response.status_code == 200, response.text
    body: Json = response.json()
    assert set(body) == ENVELOPE
    data: Json = body["data"]
    return data


def sign_in(browser: TestClient, user: User) -> Json:
    email, password, user_id = user
    form = {"email": email, "password": password, "strategy": "plain_email"}
    session = ok(browser.post("/auth/signin", data=form))
    assert session["active_signin"]["user_id"] == user_id
    return session


def sign_in_two_and_switch(browser: TestClient) -> Json:
    """Alice and Bob signed in, then Alice made active again: the switched session."""
    alice = sign_in(browser, ALICE)["active_signin_id"]
    sign_in(browser, BOB)
    switched = ok(browser.post("/session/switch-sign-in", params={"sign_in_id": alice}))
    assert switched["active_signin_id"] == alice
    return switched


def head(services: Services) -> int:
    return services.sessions.recorder.max_notification_id() or 0


def lag(services: Services, name: str) -> int:
    return services.projector(name).status().lag


def eventually(what: str, check: Callable[[], bool], timeout: float = CATCH_UP_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not {what} within {timeout}s"
        time.sleep(0.01)


# The worker ---------------------------------------------------------------------------------


def test_the_worker_catches_analytics_up_after_http_commands(
    services: Services, browser: TestClient
) -> None:
    # Given commands, which answer from the state they saved and leave projecting to the
    # worker, and a read, which catches the session read model up to them (never behind)
    sign_in_two_and_switch(browser)
    assert lag(services, "analytics") > 0
    ok(browser.get("/session"))
    assert lag(services, "sessions") == 0
    assert lag(services, "analytics") > 0
    # When the worker starts, it catches analytics up
    services.worker.start()
    eventually("caught up at start", lambda: lag(services, "analytics") == 0)
    assert count(services.views, "analytics_sign_ins") == 2
    # And when more commands arrive, the log's subscription wakes it up again
    ok(browser.post("/session/switch-organization", params={"organization_id": ACME}))
    ok(browser.post("/session/sign-out"))
    written = head(services)
    eventually("woken by new events", lambda: services.projector("analytics").position() == written)
    assert count(services.views, "analytics_membership_activations") == 1
    with services.views.transaction(commit=False) as cursor:
        cursor.execute(f"SELECT end_reason FROM {services.views.table('analytics_sign_ins')}")
        assert [r["end_reason"] for r in cursor.fetchall()] == ["signed_out_all"] * 2
    assert services.worker.last_error is None


@pytest.mark.slow  # a writer process
def test_a_subscription_delivers_events_written_by_another_process(
    durable_services: Services, durable_database_url: str
) -> None:
    services = durable_services
    arrived: queue.Queue[tuple[int, float]] = queue.Queue()
    with services.sessions.recorder.subscribe(gt=head(services)) as subscription:

        def listen() -> None:
            for notification in subscription:
                arrived.put((notification.id, time.monotonic()))

        listener = threading.Thread(target=listen, daemon=True)
        listener.start()
        # When another process starts a session (and says when its events are committed)
        writer = subprocess.run(
            [sys.executable, "-c", WRITE_ELSEWHERE],
            env={**os.environ, "SESSION_LEDGER_DATABASE_URL": durable_database_url},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert writer.returncode == 0, writer.stderr
        last_written, written_at = int(writer.stdout.split()[0]), float(writer.stdout.split()[1])
        # Then the subscription here delivers every one of them within a second
        seen: list[int] = []
        while not seen or seen[-1] < last_written:
            notification_id, at = arrived.get(timeout=5)
            seen.append(notification_id)
        subscription.stop()
    listener.join(5)
    assert seen == list(range(seen[0], last_written + 1))
    assert at - written_at < 1.0, f"delivered {at - written_at:.3f}s after the write"


# time.monotonic() is system-wide on Linux, so the two processes' readings compare.
WRITE_ELSEWHERE = """
import time
from infrastructure.container import build_services
from infrastructure.settings import Settings
services = build_services(Settings())
services.commands.start_session()
print(services.sessions.recorder.max_notification_id(), time.monotonic(), flush=True)
services.close()
"""


# The command line ---------------------------------------------------------------------------


def cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [EXE, "projections", *args],
        env={**os.environ, "SESSION_LEDGER_DATABASE_URL": url, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def status_rows(output: str) -> dict[str, list[str]]:
    """The cells of each projection's row of the status table."""
    rows: dict[str, list[str]] = {}
    for line in output.splitlines():
        cells = [c for c in re.split(r"[│|┃]", line) if c.strip()]
        if cells and cells[0].strip() in PROJECTIONS:
            rows[cells[0].strip()] = [c.strip() for c in cells]
    return rows


@pytest.mark.slow  # `session-ledger projections …` as processes
@pytest.mark.skipif(not EXE, reason="session-ledger is not installed")
def test_the_cli_reports_rebuilds_and_refuses_unknown_projections(
    durable_services: Services, durable_database_url: str
) -> None:
    services, url = durable_services, durable_database_url
    with TestClient(create_app(services=services), base_url="https://testserver") as browser:
        sign_in_two_and_switch(browser)
    written = head(services)

    status = cli(url, "status")
    assert status.returncode == 0, status.stderr
    assert "lag" in status.stdout
    rows = status_rows(status.stdout)
    assert sorted(rows) == sorted(PROJECTIONS), status.stdout
    # projection, generation, position, head, lag, rebuilding (no worker ran: commands
    # answer from their own state and leave both projections behind)
    assert rows["sessions"][1:] == ["1", "0", str(written), str(written), "no"]
    assert rows["analytics"][1:] == ["1", "0", str(written), str(written), "no"]

    rebuilt = cli(url, "rebuild", "--all")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "rebuilt sessions, analytics, user_sign_ins" in rebuilt.stdout
    for projector in services.projectors:
        assert projector.status().generation == 2
        assert projector.status().lag == 0
        assert not projector.status().rebuilding
    assert count(services.views, "analytics_switches") == 1

    refused = cli(url, "rebuild", "nope")
    assert refused.returncode == 1
    assert refused.stdout == ""
    assert refused.stderr.endswith("\n")
    assert refused.stderr.count("\n") == 1, refused.stderr
    assert refused.stderr.startswith("session-ledger: ")
    assert "'nope'" in refused.stderr
    assert "sessions" in refused.stderr
    assert "analytics" in refused.stderr
    assert [p.status().generation for p in services.projectors] == [2, 2, 2]


# Stopping the worker process ----------------------------------------------------------------

_LIBC = ctypes.CDLL(None, use_errno=True)
HAS_TGKILL = hasattr(_LIBC, "tgkill")


def signal_thread(pid: int, tid: int, signum: int) -> None:
    """Deliver a signal to one thread of a process, as the kernel may for a process's signal."""
    if _LIBC.tgkill(pid, tid, signum) != 0:
        raise OSError(ctypes.get_errno(), "tgkill failed")


@pytest.mark.slow  # a worker process
@pytest.mark.skipif(not EXE or not HAS_TGKILL, reason="needs session-ledger and Linux tgkill")
def test_sigterm_stops_the_projection_worker_whichever_thread_receives_it(
    durable_services: Services, durable_database_url: str, tmp_path: Path
) -> None:
    services = durable_services
    services.commands.start_session()
    log = tmp_path / "worker.log"
    with log.open("w") as output:
        worker = subprocess.Popen(
            [EXE, "projections", "run"],
            env={**os.environ, "SESSION_LEDGER_DATABASE_URL": durable_database_url},
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        # Given a worker that has started its threads and caught up
        eventually("caught up", lambda: all(p.status().lag == 0 for p in services.projectors))
        threads = sorted(int(t) for t in os.listdir(f"/proc/{worker.pid}/task"))
        others = [t for t in threads if t != worker.pid]
        assert others, "the worker runs no other threads"
        # When SIGTERM reaches it on one of its other threads
        signal_thread(worker.pid, others[-1], signal.SIGTERM)
        # Then it stops, cleanly, soon
        try:
            returncode = worker.wait(5)
        except subprocess.TimeoutExpired:
            returncode = None
        assert returncode == 0, f"still running 5s after SIGTERM:\n{log.read_text()[-2000:]}"
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(10)


# Operations routes --------------------------------------------------------------------------


def metric(text: str, name: str, projection: str) -> float:
    match = re.search(rf'^{name}{{projection="{projection}"}} (\S+)$', text, flags=re.M)
    assert match, f"no {name} for {projection} in:\n{text}"
    return float(match.group(1))


def test_health_and_metrics_report_each_projections_position_and_lag(
    services: Services, browser: TestClient
) -> None:
    sign_in_two_and_switch(browser)
    written = head(services)

    health = browser.get("/health")
    data = ok(health)
    assert health.json()["errors"] is None
    assert data["status"] == "ok"
    assert data["worker_error"] is None
    reported = {p["name"]: p for p in data["projections"]}
    assert sorted(reported) == sorted(PROJECTIONS)
    for projector in services.projectors:
        status = projector.status()
        assert reported[status.name] == {
            "name": status.name,
            "generation": status.generation,
            "position": status.position,
            "head": written,
            "lag": status.lag,
            "rebuilding": False,
        }
    # No worker ran and no read followed the commands: both projections are behind.
    assert reported["sessions"]["lag"] == written
    assert reported["analytics"]["lag"] == written

    metrics = browser.get("/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    assert metric(metrics.text, "session_ledger_projection_lag_events", "analytics") == written
    assert metric(metrics.text, "session_ledger_projection_lag_events", "sessions") == written
    assert metric(metrics.text, "session_ledger_projection_position", "sessions") == 0

    services.worker.catch_up()
    caught_up = browser.get("/metrics").text
    assert metric(caught_up, "session_ledger_projection_lag_events", "analytics") == 0
    assert metric(caught_up, "session_ledger_projection_position", "sessions") == written
    assert {p["lag"] for p in ok(browser.get("/health"))["projections"]} == {0}


# Views in another database ------------------------------------------------------------------


@pytest.fixture
def views_url(durable_database_url: str, tmp_path: Path) -> Iterator[str]:
    """A second database (SQLite file, PostgreSQL schema) of the same kind as the store."""
    if durable_database_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path}/views.db"
        return
    with fresh_postgres_url() as url:
        yield url


def test_views_in_another_database_work_end_to_end(
    durable_database_url: str, views_url: str
) -> None:
    with services_for(
        durable_database_url,
        clock=SettableClock(START),
        rate_limits=False,
        views_database_url=views_url,
    ) as services:
        assert services.views is not services.sql
        with TestClient(create_app(services=services), base_url="https://testserver") as browser:
            # Read-your-writes through the read model in the other database
            switched = sign_in_two_and_switch(browser)
            again = ok(browser.get("/session"))
            assert again["active_signin_id"] == switched["active_signin_id"]
            assert len(again["signins"]) == 2
        assert services.projector("sessions").position() == head(services)
        assert count(services.views, "read_sessions") == 1
        services.worker.catch_up()
        assert count(services.views, "analytics_sign_ins") == 2
        assert count(services.views, "analytics_switches") == 1
        in_views = tables_and_views(services.views)
        in_main = tables_and_views(services.sql)
    assert {"projection_state", "read_sessions", "analytics_sign_ins"} <= in_views
    projection_names = {
        n for n in in_main if n == "projection_state" or n.startswith(("read_", "analytics_"))
    }
    assert projection_names == set()
