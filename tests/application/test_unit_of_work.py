"""The unit of work: one typed outcome per command, refusals saved before they are raised,
and locks an action takes released when its run ends, whatever the ending."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from application.unit_of_work import Changed, CommandScope, Refused, StaleRead, UnitOfWork
from domain.errors import InvalidCode, NoActiveSignIn
from domain.ids import aggregate_uuid
from domain.session import Session
from infrastructure.clock import SettableClock
from infrastructure.container import Services
from tests.helpers import ALICE, services_for


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
