"""The unit of work: one typed outcome per command, refusals saved before they are raised,
and locks an action takes released when its run ends, whatever the ending."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from application.unit_of_work import Changed, CommandScope, Refused, StaleRead, UnitOfWork
from domain.errors import InvalidCode, InvalidCredentials, InvalidSignInId, NoActiveSignIn
from domain.ids import aggregate_uuid
from domain.session import Session
from infrastructure.clock import SettableClock
from infrastructure.container import Services
from tests.helpers import ALICE, BOB, services_for


@pytest.fixture
def clock() -> SettableClock:
    return SettableClock()


@pytest.fixture
def services(clock: SettableClock) -> Iterator[Services]:
    with services_for("memory://", clock=clock, rate_limits=False) as built:
        yield built


@pytest.fixture
def work(services: Services) -> UnitOfWork:
    return services.auth.work


def stored(services: Services, session_id: int) -> int:
    return len(services.sessions.recorder.select_events(aggregate_uuid(session_id)))


def test_an_action_returns_its_result_with_the_document(
    services: Services, work: UnitOfWork
) -> None:
    session_id = int(services.commands.start_session().document.id)

    def action(session: Session, scope: CommandScope) -> Changed[int]:
        return Changed(session.version)

    done = work.run(session_id, action)
    assert done.result == 1
    assert done.document.id == str(session_id)


def test_a_refusal_is_saved_and_then_raised(
    services: Services, work: UnitOfWork, clock: SettableClock
) -> None:
    started = services.commands.start_session()
    session_id = int(started.document.id)
    services.auth.sign_in_with_password(session_id, *ALICE[:2], started.new_token)
    clock.advance(work.policy.activity_resolution)
    before = stored(services, session_id)

    def action(session: Session, scope: CommandScope) -> Refused:
        session.note_activity(scope.now, work.policy.activity_resolution)  # a fact
        return Refused(InvalidCode())

    with pytest.raises(InvalidCode):
        work.run(session_id, action)
    assert stored(services, session_id) == before + 1


def test_a_lock_taken_by_an_action_is_released_when_the_run_ends(
    services: Services, work: UnitOfWork
) -> None:
    session_id = int(services.commands.start_session().document.id)
    lock = threading.Lock()
    runs: list[bool] = []

    def refused_after_locking(session: Session, scope: CommandScope) -> Changed[None]:
        scope.hold(lock)
        session.active_sign_in(scope.now)  # anonymous: NoActiveSignIn
        return Changed(None)

    def stale_once_then_done(session: Session, scope: CommandScope) -> Changed[int]:
        scope.hold(lock)  # would deadlock on the rerun if the first run kept it
        runs.append(True)
        if len(runs) == 1:
            raise StaleRead
        return Changed(len(runs))

    with pytest.raises(NoActiveSignIn):
        work.run(session_id, refused_after_locking)
    assert not lock.locked()
    assert work.run(session_id, stale_once_then_done).result == 2
    assert not lock.locked()


def test_in_one_process_the_cached_guess_is_never_stale(
    services: Services, work: UnitOfWork, clock: SettableClock
) -> None:
    # Given a session through every kind of save: a start, sign-ins, a refused (and saved)
    # wrong password, switches and a sign-out
    started = services.commands.start_session()
    session_id = int(started.document.id)
    signed_in = services.auth.sign_in_with_password(session_id, *ALICE[:2], started.new_token)
    with pytest.raises(InvalidCredentials):
        services.auth.sign_in_with_password(session_id, BOB[0], "wrong", signed_in.new_token)
    both = services.auth.sign_in_with_password(session_id, *BOB[:2], signed_in.new_token)
    ids = {s.user_id: s.id for s in both.document.signins}
    for _ in range(3):
        clock.advance(work.policy.activity_resolution)
        services.commands.switch_sign_in(session_id, ids[ALICE[2]])
        services.commands.switch_sign_in(session_id, ids[BOB[2]])
    services.commands.sign_out(session_id, ids[BOB[2]], both.new_token)

    # Then no command of this process ever lost to its own stale guess
    assert work.conflicts == 0
    document = services.queries.get_session(session_id)
    assert [s.user_id for s in document.signins] == [ALICE[2]]


def test_a_guess_made_stale_by_another_process_is_caught_by_the_append(
    sqlite_url: str,
) -> None:
    with services_for(sqlite_url) as here, services_for(sqlite_url, load_demo=False) as there:
        # Given a session both processes have worked on, Bob active
        started = here.commands.start_session()
        session_id = int(started.document.id)
        token = here.auth.sign_in_with_password(session_id, *ALICE[:2], started.new_token)
        both = here.auth.sign_in_with_password(session_id, *BOB[:2], token.new_token)
        ids = {s.user_id: s.id for s in both.document.signins}
        there.commands.switch_sign_in(session_id, ids[ALICE[2]])
        there.commands.switch_sign_in(session_id, ids[BOB[2]])
        # When the other process signs Bob out, behind this one's cached session
        there.commands.sign_out(session_id, ids[BOB[2]], both.new_token)
        # Then this process's switch to Alice, decided on its stale guess (Bob active),
        # conflicts at the append, reruns on the stored session, and lands on top of it
        here.commands.switch_sign_in(session_id, ids[ALICE[2]])
        assert here.auth.work.conflicts == 1
        document = there.queries.get_session(session_id)
        assert [s.user_id for s in document.signins] == [ALICE[2]]
        assert document.active_signin_id == ids[ALICE[2]]
        # and a refusal is decided on the stored session, not on a guess (Bob is gone)
        with pytest.raises(InvalidSignInId):
            here.commands.switch_sign_in(session_id, ids[BOB[2]])
        assert here.auth.work.conflicts == 1
        versions = [
            e.originator_version
            for e in here.sessions.recorder.select_events(aggregate_uuid(session_id))
        ]
        assert versions == list(range(1, len(versions) + 1))


def test_the_guess_is_not_one_of_the_configured_tries() -> None:
    # Given a service allowed one try per command
    with services_for("memory://", command_retries=1) as services:
        started = services.commands.start_session()
        session_id = int(started.document.id)
        signed_in = services.auth.sign_in_with_password(session_id, *ALICE[:2], started.new_token)
        alice = signed_in.document.active_signin_id
        assert alice is not None
        # When a command saves nothing (a switch to the active sign-in) or is refused by the
        # session's state, its guess is not confirmed and it is decided again on the stored
        # session: that one try answers, not ConcurrentModification
        document = services.commands.switch_sign_in(session_id, alice)
        assert document.active_signin_id == alice
        with pytest.raises(InvalidSignInId):
            services.commands.switch_sign_in(session_id, "1" * 18)
