"""Rebuilding both projections while browsers switch accounts and read their sessions.

Given several sessions with two sign-ins each and the projection worker running, browsers
keep switching between their two accounts and reading ``GET /session``, another browser keeps
signing a third account in and out, one thread rebuilds both projections over and over, and
another polls the analytics views. Every request must succeed and show the complete session
with the switch it just made; no polled count may ever go down; and afterwards the views must
equal a fresh rebuild.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.app import create_app
from infrastructure.clock import SettableClock
from infrastructure.container import Services
from tests.helpers import ALICE, BOB, CAROL, services_for
from tests.projections.support import START, all_rows, count, differences, rebuild_all

pytestmark = pytest.mark.slow  # rebuilds under threads of traffic

BROWSERS = 4
SWITCHES = 40  # per browser, each followed by a GET
MIN_REBUILDS = 3  # of each projection, at least, while the traffic lasts
TIMEOUT = 120.0
POLLED = ("analytics_sign_ins", "analytics_switches", "analytics_sessions", "read_sessions")

User = tuple[str, str, str]
Json = dict[str, Any]


def client(app: FastAPI, exits: ExitStack) -> TestClient:
    """A browser: its own cookie jar; server errors come back as 500s, not exceptions."""
    return exits.enter_context(
        TestClient(app, base_url="https://testserver", raise_server_exceptions=False)
    )


def ok(response: httpx.Response) -> Json:
    assert response.status_code == 200, f"{response.status_code}: {response.text[:500]}"
    data: Json = response.json()["data"]
    return data


def sign_in(browser: TestClient, user: User) -> Json:
    email, password, _ = user
    form = {"email": email, "password": password, "strategy": "plain_email"}
    return ok(browser.post("/auth/signin", data=form))


def sign_in_id(session: Json, user: User) -> str:
    (found,) = [s["id"] for s in session["signins"] if s["user_id"] == user[2]]
    return str(found)


def check_complete(session: Json, sign_ins: set[str], active: str) -> None:
    """The session shows both its sign-ins, whole, and the one just made active."""
    assert {s["id"] for s in session["signins"]} == sign_ins, session
    assert all(s["user"] is not None for s in session["signins"]), session
    assert session["active_signin_id"] == active, session
    assert session["active_signin"] is not None, session
    assert session["active_signin"]["id"] == active, session


class Threads:
    """Threads whose failures are collected, and a flag that tells the loops to stop."""

    def __init__(self) -> None:
        self.failures: list[str] = []
        self.done = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self, name: str, work: Callable[[], None]) -> None:
        def run() -> None:
            try:
                work()
            except BaseException as error:  # every failure is reported, assertions too
                self.failures.append(f"{name}: {type(error).__name__}: {error}")
                self.done.set()

        thread = threading.Thread(target=run, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def join(self) -> None:
        for thread in self._threads:
            thread.join(TIMEOUT)
        assert not any(t.is_alive() for t in self._threads), "a thread hung"


@pytest.fixture
def services(durable_database_url: str) -> Iterator[Services]:
    with services_for(durable_database_url, clock=SettableClock(START), rate_limits=False) as built:
        yield built


def test_a_rebuild_never_keeps_writers_waiting_for_a_connection(services: Services) -> None:
    """The smallest form of the traffic below: writers in threads, rebuilds in this one."""
    for _ in range(30):
        services.commands.start_session()
    threads = Threads()

    def write() -> None:
        while not threads.done.is_set():
            services.commands.start_session()

    for index in range(4):
        threads.start(f"writer-{index}", write)
    took: list[float] = []
    try:
        for _ in range(5):
            for projector in services.projectors:
                started = time.monotonic()
                projector.rebuild()
                took.append(time.monotonic() - started)
    finally:
        threads.done.set()
        threads.join()
    assert not threads.failures, "\n".join(threads.failures)
    # A few hundred events rebuild in milliseconds; the pool gives up on a waiter after 5 s.
    assert max(took) < 4.0, took
    services.worker.catch_up()
    live = all_rows(services)
    rebuild_all(services)
    assert all_rows(services) == live


def test_rebuilds_under_traffic_lose_nothing_and_break_no_request(services: Services) -> None:
    app = create_app(services=services)
    with ExitStack() as exits:
        # Given sessions with two sign-ins each, and the worker keeping analytics up to date
        browsers = [client(app, exits) for _ in range(BROWSERS)]
        pairs: list[tuple[str, str]] = []
        for browser in browsers:
            sign_in(browser, ALICE)
            session = sign_in(browser, BOB)
            pairs.append((sign_in_id(session, ALICE), sign_in_id(session, BOB)))
        churner = client(app, exits)
        sign_in(churner, ALICE)
        services.worker.start()
        threads = Threads()
        switched: list[str] = []  # one entry per completed switch-and-read
        rebuilds: list[str] = []
        observed: dict[str, list[int]] = {view: [] for view in POLLED}

        def switching(browser: TestClient, pair: tuple[str, str]) -> Callable[[], None]:
            def work() -> None:
                for n in range(SWITCHES):
                    if threads.done.is_set():
                        return
                    target = pair[n % 2]
                    answer = ok(
                        browser.post("/session/switch-sign-in", params={"sign_in_id": target})
                    )
                    check_complete(answer, set(pair), target)
                    check_complete(ok(browser.get("/session")), set(pair), target)
                    switched.append(target)

            return work

        def churning() -> None:
            while not threads.done.is_set():
                carol = sign_in_id(sign_in(churner, CAROL), CAROL)
                ok(churner.post("/session/sign-out", params={"sign_in_id": carol}))

        def rebuilding() -> None:
            while not threads.done.is_set() or len(rebuilds) < 2 * MIN_REBUILDS:
                for projector in services.projectors:
                    projector.rebuild()
                    rebuilds.append(projector.name)

        def polling() -> None:
            while not threads.done.is_set():
                for view in POLLED:
                    seen = count(services.views, view)
                    history = observed[view]
                    assert not history or seen >= history[-1], f"{view}: {history[-1]} -> {seen}"
                    history.append(seen)

        # When they switch and read while both projections are rebuilt again and again
        for index, (browser, pair) in enumerate(zip(browsers, pairs, strict=True)):
            threads.start(f"browser-{index}", switching(browser, pair))
        threads.start("churner", churning)
        threads.start("rebuilder", rebuilding)
        threads.start("poller", polling)
        deadline = time.monotonic() + TIMEOUT
        while len(switched) < BROWSERS * SWITCHES and not threads.failures:
            assert time.monotonic() < deadline, "the traffic did not finish"
            time.sleep(0.01)
        threads.done.set()
        threads.join()
        services.worker.stop()

        # Then nothing failed, counts only grew, and the views are what a fresh rebuild makes
        assert not threads.failures, "\n".join(threads.failures)
        assert rebuilds.count("sessions") >= MIN_REBUILDS
        assert rebuilds.count("analytics") >= MIN_REBUILDS
        assert all(len(seen) > 10 for seen in observed.values()), observed
        services.worker.catch_up()
        live = all_rows(services)
        rebuild_all(services)
        rebuilt = all_rows(services)
    assert live == rebuilt, differences(live, rebuilt)
    assert len(rebuilt["analytics_switches"]) == BROWSERS * SWITCHES
