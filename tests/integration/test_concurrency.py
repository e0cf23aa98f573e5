"""Concurrent commands on one session (and one user) on SQLite and PostgreSQL.

Many threads race to switch one session's active sign-in, in the application and over HTTP;
the same user signs in twice at once; sessions of one user switch organizations at once.
Nothing may fail, no update may be lost, and the stored events must tell the final state.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.application import Repository
from fastapi.testclient import TestClient

from api.app import create_app
from application.errors import ConcurrentModification
from application.read_model import SessionDocument
from application.session_commands import CommandResult
from application.sessions import SessionsApp
from domain.errors import UserAlreadySignedIn
from domain.ids import aggregate_uuid
from domain.session import Session
from domain.user_context import UserContext, user_context_uuid
from infrastructure.clock import SettableClock
from infrastructure.container import Services
from tests.helpers import ACME, ACME_DATA, ACME_WEB, ALICE, BOB, CAROL, GLOBEX, services_for
from tests.helpers import race as race_threads

pytestmark = pytest.mark.slow  # races of many threads, over HTTP too

THREADS = 16
SWITCHES = 25  # per thread
TIMEOUT = 120  # seconds for any thread; a hang is a failure, not a stuck suite
CAROL_INDEX = 2  # signed in last, so active when a race starts

User = tuple[str, str, str]


@pytest.fixture
def services(durable_database_url: str) -> Iterator[Services]:
    """Real services on a new SQLite file, then on a new PostgreSQL schema."""
    with services_for(durable_database_url, clock=SettableClock(), rate_limits=False) as built:
        yield built


def race(threads: int, work: Callable[[int], None]) -> list[BaseException]:
    """Run ``work(thread_index)`` in threads released together; the exceptions they raised."""
    return race_threads(threads, work, TIMEOUT)


def sign_in(services: Services, *users: User) -> CommandResult:
    """A new session with ``users`` signed in, in order."""
    result = services.commands.start_session()
    for email, password, _ in users:
        result = services.auth.sign_in_with_password(
            int(result.document.id), email, password, result.new_token
        )
    return result


def ids_by_user(document: SessionDocument) -> dict[str, str]:
    """Live sign-in ids by user id."""
    return {s.user_id: s.id for s in document.signins}


def switches(app: SessionsApp, session_id: int) -> list[Any]:
    """The session's ActiveSignInSwitched events, in order."""
    events = app.events.get(aggregate_uuid(session_id))
    return [e for e in events if type(e).__name__ == "ActiveSignInSwitched"]


def assert_switches_chain(app: SessionsApp, session_id: int, first_active: str) -> Any:
    """Every recorded switch started from the previous one's target: none was lost."""
    recorded = switches(app, session_id)
    assert recorded
    previous = int(first_active)
    for switched in recorded:
        assert switched.from_sign_in_id == previous
        assert switched.sign_in_id != previous
        previous = switched.sign_in_id
    return recorded[-1]


def uncached(app: SessionsApp, aggregate_id: UUID) -> Any:
    """The aggregate rebuilt without the cache (from snapshot and events)."""
    return Repository(event_store=app.events, snapshot_store=app.snapshots).get(aggregate_id)


# Switching one session's active sign-in ---------------------------------------------------


def test_concurrent_switches_in_the_app_lose_nothing(
    services: Services, durable_database_url: str
) -> None:
    app = services.sessions
    signed_in = sign_in(services, ALICE, BOB, CAROL)
    session_id = int(signed_in.document.id)
    targets = list(ids_by_user(signed_in.document).values())
    exhausted: list[int] = []  # list.append is atomic; threads share it

    def work(thread: int) -> None:
        for step in range(SWITCHES):
            try:
                document = services.commands.switch_sign_in(
                    session_id, targets[(thread + step) % 3]
                )
            except ConcurrentModification:
                exhausted.append(thread)
                continue
            assert document.active_signin_id in targets

    failures = race(THREADS, work)

    assert failures == []
    assert exhausted == []  # the default retries are enough
    last = assert_switches_chain(app, session_id, targets[CAROL_INDEX])
    assert services.queries.get_session(session_id).active_signin_id == str(last.sign_in_id)
    state: Session = uncached(app, aggregate_uuid(session_id))
    assert state.active_sign_in_id == last.sign_in_id
    with services_for(durable_database_url, load_demo=False, rate_limits=False) as restarted:
        document = restarted.queries.get_session(session_id)
    assert document.active_signin_id == str(last.sign_in_id)
    assert [s.id for s in document.signins] == targets


def test_each_concurrent_switch_answers_with_the_session_after_its_own_switch(
    services: Services,
) -> None:
    signed_in = sign_in(services, ALICE, BOB, CAROL)
    session_id = int(signed_in.document.id)
    targets = list(ids_by_user(signed_in.document).values())
    answered_other: list[str] = []

    def work(thread: int) -> None:
        for step in range(SWITCHES):
            target = targets[(thread + step) % 3]
            if services.commands.switch_sign_in(session_id, target).active_signin_id != target:
                answered_other.append(target)

    assert race(THREADS, work) == []
    assert answered_other == []


def test_concurrent_switches_over_http_lose_nothing(services: Services) -> None:
    app = create_app(services=services)
    with TestClient(app, base_url="https://testserver") as client:
        for email, password, _ in (ALICE, BOB, CAROL):
            response = client.post(
                "/auth/signin",
                data={"email": email, "password": password, "strategy": "plain_email"},
            )
            assert response.status_code == 200, response.text
        document = response.json()["data"]
        session_id = int(document["id"])
        targets = [s["id"] for s in document["signins"]]
        statuses: Counter[int] = Counter()
        codes: Counter[str] = Counter()
        lock = threading.Lock()

        def work(thread: int) -> None:
            for step in range(SWITCHES):
                reply = client.post(
                    "/session/switch-sign-in", params={"sign_in_id": targets[(thread + step) % 3]}
                )
                body = reply.json()
                with lock:
                    statuses[reply.status_code] += 1
                    codes.update(e["code"] for e in body["errors"] or [])
                if reply.status_code == 200:
                    assert body["data"]["active_signin_id"] in targets
                    assert body["session"]["id"] == str(session_id)

        failures = race(THREADS, work)
        final = client.get("/session").json()["data"]

    assert failures == []
    assert statuses == Counter({200: THREADS * SWITCHES}), (statuses, codes)
    last = assert_switches_chain(services.sessions, session_id, targets[CAROL_INDEX])
    assert final["active_signin_id"] == str(last.sign_in_id)
    assert final["id"] == str(session_id)


# Signing the same user in twice at once -----------------------------------------------------


def sign_in_twice_at_once(
    services: Services, user: User
) -> tuple[int, list[CommandResult], list[BaseException]]:
    """A new session, and two threads signing ``user`` in to it with the same cookie at once."""
    auth = services.auth
    started = services.commands.start_session()
    session_id = int(started.document.id)
    email, password, _ = user
    results: list[CommandResult] = []

    def work(_: int) -> None:
        results.append(auth.sign_in_with_password(session_id, email, password, started.new_token))

    failures = race(2, work)
    return session_id, results, failures


@pytest.mark.parametrize("user", [ALICE, BOB, CAROL])
def test_the_same_user_signing_in_twice_at_once_gets_one_sign_in(
    services: Services, user: User
) -> None:
    app = services.sessions
    for _ in range(5):
        session_id, results, failures = sign_in_twice_at_once(services, user)

        assert len(results) == 1, failures
        assert [type(f) for f in failures] == [UserAlreadySignedIn]
        document = services.queries.get_session(session_id)
        assert [s.user_id for s in document.signins] == [user[2]]
        assert document.active_signin_id == document.signins[0].id
        names = [type(e).__name__ for e in app.events.get(aggregate_uuid(session_id))]
        assert names.count("SignInCompleted") == 1
        assert results[0].new_token is not None
        assert services.tokens.resolve(results[0].new_token) == session_id


# Organizations of one user from several sessions ----------------------------------------------

RAW_CONTEXTS = [("organization", ACME), ("organization", GLOBEX), ("organization", ""),
                ("workspace", ACME_WEB), ("workspace", ACME_DATA), ("workspace", "")]  # fmt: skip


def context(document: SessionDocument) -> tuple[str | None, str | None]:
    """The active sign-in's organization and workspace membership ids."""
    assert document.active_signin is not None
    active = document.active_signin
    return active.active_organization_membership_id, active.active_workspace_membership_id


def remembered(app: SessionsApp, user: User) -> tuple[str | None, str | None]:
    """The context a user's next sign-in will start with, as the UserContext holds it."""
    state: UserContext = app.repository.get(user_context_uuid(int(user[2])))
    assert vars(state) == vars(uncached(app, user_context_uuid(int(user[2]))))
    org, workspace = state.organization_membership_id, state.workspace_membership_id
    return (str(org) if org else None, str(workspace) if workspace else None)


def test_sessions_of_one_user_switching_at_once_keep_the_last_context(services: Services) -> None:
    app = services.sessions
    sessions = [int(sign_in(services, ALICE).document.id) for _ in range(4)]
    exhausted: list[int] = []

    def work(thread: int) -> None:
        chooser = random.Random(thread)
        switch = {
            "organization": services.commands.switch_organization,
            "workspace": services.commands.switch_workspace,
        }
        for _ in range(SWITCHES):
            kind, raw = chooser.choice(RAW_CONTEXTS)
            try:
                switch[kind](sessions[thread], raw)
            except ConcurrentModification:
                exhausted.append(thread)

    failures = race(len(sessions), work)  # one thread per session: each session's commands are
    # sequential, so whoever wrote the user's context last also holds it in its session.

    assert failures == []
    assert exhausted == []
    finals = {context(services.queries.get_session(s)) for s in sessions}
    last = remembered(app, ALICE)
    assert last in finals
    assert context(sign_in(services, ALICE).document) == last


def test_two_tabs_switching_organization_at_once_keep_the_users_context_in_step(
    services: Services,
) -> None:
    app = services.sessions
    tabs = int(sign_in(services, ALICE).document.id)
    elsewhere = int(sign_in(services, ALICE).document.id)
    targets = [ACME, GLOBEX]  # one changes only the user's context, one only the session

    def work(thread: int) -> None:
        services.commands.switch_organization(tabs, targets[thread])

    out_of_step = 0
    for _ in range(20):
        services.commands.switch_organization(tabs, ACME)  # this session: Acme
        services.commands.switch_organization(elsewhere, GLOBEX)  # the user's last choice: Globex

        assert race(2, work) == []
        # In either serial order, the session and the user's context end up the same.
        if context(services.queries.get_session(tabs)) != remembered(app, ALICE):
            out_of_step += 1

    assert out_of_step == 0
