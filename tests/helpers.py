"""Real services for tests: real stores, real argon2 (cheap parameters), a settable clock."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test

from application.authenticator_base import random_code
from application.ports import Clock, Mailer
from infrastructure.clock import SettableClock
from infrastructure.container import Services, build_services
from infrastructure.directory_file import parse_directory
from infrastructure.passwords import Argon2Passwords
from infrastructure.settings import Settings
from tests.conftest import require_postgres

DEMO_DIRECTORY = (
    Path(__file__).resolve().parents[1] / "infrastructure" / "demo" / "demo-directory.json"
)

ALICE = ("alice@example.com", "alice-demo-password", "100000000000000001")
BOB = ("bob@example.com", "bob-demo-password", "100000000000000002")
CAROL = ("carol@example.com", "carol-demo-password", "100000000000000003")

ACME, GLOBEX = "200000000000000001", "200000000000000002"
ACME_WEB, ACME_DATA = "400000000000000001", "400000000000000002"


def cheap_passwords() -> Argon2Passwords:
    """Real argon2id, with parameters small enough for a test suite: 64 KiB of memory makes a
    hash take a tenth of a millisecond instead of eight (every stack hashes the demo users'
    passwords); each hash records its parameters, so the rules are the same."""
    return Argon2Passwords(time_cost=1, memory_cost=64, parallelism=1)


class SequentialCodes:
    """One-time codes a test can predict: 100000, 100002, 100004, … Two codes never match by
    chance, and no code plus one (a test's usual wrong code) is ever sent."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def __call__(self) -> str:
        code = f"{100_000 + 2 * len(self.sent):06d}"
        self.sent.append(code)
        return code


@contextmanager
def services_for(
    database_url: str,
    clock: Clock | None = None,
    load_demo: bool = True,
    new_code: Callable[[], str] = random_code,
    mailer: Mailer | None = None,
    **settings: object,
) -> Iterator[Services]:
    """Services on ``database_url`` with the demo directory loaded; closed afterwards."""
    built = build_services(
        Settings(database_url=database_url, **settings),  # type: ignore[arg-type]
        clock=clock or SettableClock(),
        passwords=cheap_passwords(),
        new_code=new_code,
        mailer=mailer,
    )
    try:
        if load_demo:
            built.directory_loader.load(parse_directory(DEMO_DIRECTORY.read_text()))
        yield built
    finally:
        built.close()


def at_most(examples: int) -> int:
    """The Hypothesis profile's example count, capped at ``examples``: for tests whose every
    example is costly (a new store, a served app), the ``ci`` profile's 100 would be more
    than they need, while the ``dev`` profile's few still apply."""
    profile = settings.default
    assert profile is not None  # tests/conftest.py loads one
    return min(examples, int(profile.max_examples))


def each_store(machines: Mapping[str, object]) -> pytest.MarkDecorator:
    """Parametrize ``store`` over the stores ``machines`` names: the in-memory machine in
    the fast tier (few examples under the dev profile), the others in the slow tier."""
    return pytest.mark.parametrize(
        "store",
        [pytest.param(s, marks=[pytest.mark.slow] if s != "memory" else []) for s in machines],
    )


def run_machine(store: str, machines: Mapping[str, tuple[type[Any], int, int]]) -> None:
    """Run the Hypothesis state machine for ``store`` (the machine class on that store: its
    ``store`` attribute set; a new store per example) with at most its (examples, steps)
    budget (the loaded profile may run fewer examples, see :func:`at_most`). On PostgreSQL
    an example's new schema and tables cost more than its steps: fewer, longer examples run
    as many commands."""
    if store == "postgres":
        require_postgres()
    machine, examples, steps = machines[store]
    on_store = type(f"{store.title()}{machine.__name__}", (machine,), {"store": store})
    run_state_machine_as_test(  # type: ignore[no-untyped-call]
        on_store,
        settings=settings(
            max_examples=at_most(examples),
            stateful_step_count=steps,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )


def race(threads: int, work: Callable[[int], None], timeout: float) -> list[BaseException]:
    """Run ``work(thread_index)`` in threads released together; the exceptions they raised
    (assertions too). A thread still running after ``timeout`` seconds fails the test."""
    start = threading.Barrier(threads, timeout=timeout)
    failures: list[BaseException] = []
    lock = threading.Lock()

    def run(index: int) -> None:
        try:
            start.wait()
            work(index)
        except BaseException as error:
            with lock:
                failures.append(error)

    workers = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout)
    assert not any(w.is_alive() for w in workers), "a thread hung"
    return failures


def two_sign_ins_and_a_switch_back(services: Services) -> int:
    """A new session where Alice and then Bob sign in and Alice is made active again; its id."""
    started = services.commands.start_session()
    session_id = int(started.document.id)
    token = started.new_token
    for user in (ALICE, BOB):
        result = services.auth.sign_in_with_password(session_id, user[0], user[1], token)
        token = result.new_token or token
    alice = next(s.id for s in result.document.signins if s.user_id == ALICE[2])
    services.commands.switch_sign_in(session_id, alice)
    return session_id


T = TypeVar("T")


def on_a_loop(services: Services, step: Callable[[], Awaitable[T]]) -> T:
    """Run ``step`` on a fresh event loop with the async reads (if any) open on it, as a
    lifespan does."""

    async def run() -> T:
        reads = services.async_reads  # None where the loop reads by itself (SQLite)
        if reads is not None:
            await reads.open()
        try:
            return await step()
        finally:
            if reads is not None:
                await reads.close()

    return asyncio.run(run())


def signed_in(services: Services, *users: tuple[str, str, str]) -> tuple[int, str]:
    """A session with ``users`` signed in, its id and cookie token, the cookie remembered."""
    started = services.commands.start_session()
    session_id, token = int(started.document.id), started.new_token
    for email, password, _ in users:
        token = services.auth.sign_in_with_password(session_id, email, password, token).new_token
    assert token is not None
    services.queries.get_session(services.tokens.resolve(token))  # remembered, projected
    return session_id, token
