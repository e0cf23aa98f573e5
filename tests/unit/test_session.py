"""The Session aggregate's rules, without any infrastructure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from domain.errors import (
    InvalidSignInId,
    MaxSignInsReached,
    NoActiveSignIn,
    NotAMember,
    UserAlreadySignedIn,
)
from domain.session import Session
from domain.values import (
    ActiveContext,
    OrganizationMembershipFact,
    SignInMethod,
    WorkspaceMembershipFact,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
LIFETIME = timedelta(days=30)


def signed_in(session: Session, sign_in_id: int, user_id: int, at: datetime = T0) -> None:
    attempt_id = sign_in_id * 10
    session.attempt_sign_in(
        attempt_id, SignInMethod.PLAIN_EMAIL, user_id, "d", at + timedelta(minutes=30), 5, at
    )
    session.complete_sign_in(attempt_id, sign_in_id, user_id, at + LIFETIME, ActiveContext(), 5, at)


def event_names(session: Session) -> list[str]:
    return [type(e).__name__ for e in session.collect_events()]


def test_a_completed_sign_in_becomes_active() -> None:
    session = Session.start(100, T0)
    signed_in(session, 1, 11)
    signed_in(session, 2, 22)
    assert session.active_sign_in_id == 2
    assert [s.id for s in session.live_sign_ins(T0)] == [1, 2]


def test_switching_to_the_active_sign_in_records_nothing() -> None:
    session = Session.start(100, T0)
    signed_in(session, 1, 11)
    session.collect_events()
    session.switch_sign_in(1, T0)
    assert event_names(session) == []


def test_switch_records_from_and_to() -> None:
    session = Session.start(100, T0)
    signed_in(session, 1, 11)
    signed_in(session, 2, 22)
    session.collect_events()
    session.switch_sign_in(1, T0)
    (switched,) = session.collect_events()
    assert type(switched).__name__ == "ActiveSignInSwitched"
    assert (switched.from_sign_in_id, switched.sign_in_id) == (2, 1)  # type: ignore[attr-defined]


@pytest.mark.parametrize("bad", [None, 3, 999])
def test_switch_to_anything_but_a_live_sign_in_is_refused_and_records_nothing(
    bad: int | None,
) -> None:
    session = Session.start(100, T0)
    signed_in(session, 1, 11)
    session.collect_events()
    with pytest.raises(InvalidSignInId):
        session.switch_sign_in(bad, T0)
    assert event_names(session) == []


def test_expired_and_signed_out_sign_ins_cannot_be_switched_to() -> None:
    session = Session.start(100, T0)
    signed_in(session, 1, 11)
    signed_in(session, 2, 22)
    session.sign_out(1, T0)
    with pytest.raises(InvalidSignInId):
        session.switch_sign_in(1, T0)
    later = T0 + LIFETIME
    with pytest.raises(InvalidSignInId):
        session.switch_sign_in(2, later)
    session.expire_sign_ins(later)
    assert session.live_sign_ins(later) == []
    assert session.active_sign_in_id is None


def test_signing_out_the_inactive_sign_in_keeps_the_active_one() -> None:
    session = Session.start(100, T0)
    signed_in(session, 1, 11)
    signed_in(session, 2, 22)
    session.sign_out(1, T0)
    assert session.active_sign_in_id == 2
    session.sign_out(2, T0)
    assert session.active_sign_in_id is None


def test_sign_out_all_leaves_an_anonymous_session_and_records_one_event() -> None:
    session = Session.start(100, T0)
    signed_in(session, 1, 11)
    signed_in(session, 2, 22)
    session.collect_events()
    session.sign_out_all(T0)
    assert event_names(session) == ["SignedOutOfAll"]
    assert session.live_sign_ins(T0) == []
    assert session.active_sign_in_id is None
    session.sign_out_all(T0)
    assert event_names(session) == []


def test_the_same_user_cannot_sign_in_twice_and_the_maximum_holds() -> None:
    session = Session.start(100, T0)
    signed_in(session, 1, 11)
    with pytest.raises(UserAlreadySignedIn):
        session.check_can_sign_in(11, 5, T0)
    for n in range(2, 6):
        signed_in(session, n, n * 11)
    with pytest.raises(MaxSignInsReached):
        session.check_can_sign_in(99, 5, T0)


def test_switching_keeps_each_accounts_organization_and_workspace() -> None:
    session = Session.start(100, T0)
    signed_in(session, 1, 11)
    org = OrganizationMembershipFact(id=500, user_id=11, organization_id=7)
    session.activate_workspace(
        WorkspaceMembershipFact(id=600, workspace_id=8, organization_membership=org), T0
    )
    signed_in(session, 2, 22)
    session.switch_sign_in(1, T0)
    active = session.active_sign_in(T0)
    assert (active.organization_membership_id, active.workspace_membership_id) == (500, 600)


def test_organization_switch_clears_the_workspace_and_checks_membership() -> None:
    session = Session.start(100, T0)
    with pytest.raises(NoActiveSignIn):
        session.activate_organization(None, T0)
    signed_in(session, 1, 11)
    org = OrganizationMembershipFact(id=500, user_id=11, organization_id=7)
    session.activate_workspace(
        WorkspaceMembershipFact(id=600, workspace_id=8, organization_membership=org), T0
    )
    session.activate_organization(org, T0)
    assert session.active_sign_in(T0).workspace_membership_id is None
    with pytest.raises(NotAMember):
        session.activate_organization(
            OrganizationMembershipFact(id=501, user_id=22, organization_id=7), T0
        )


def test_replaying_events_rebuilds_the_same_state() -> None:
    session = Session.start(100, T0)
    signed_in(session, 1, 11)
    signed_in(session, 2, 22)
    session.switch_sign_in(1, T0)
    session.sign_out(2, T0)
    events = session.collect_events()
    replayed = None
    for e in events:
        replayed = e.mutate(replayed)
    assert replayed is not None
    assert replayed.__dict__ == session.__dict__
