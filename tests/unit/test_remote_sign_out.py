"""Session.sign_out_remotely: another browser of the same user ends one of this session's
sign-ins, and the event names who did it."""

from __future__ import annotations

from datetime import timedelta

import pytest

from domain.errors import InvalidSignInId
from domain.session import Session
from tests.unit.test_session import LIFETIME, T0, event_names, signed_in

ALICE, BOB = 11, 22
PHONE_SESSION, PHONE_SIGN_IN = 900, 901


def test_the_sign_in_ends_and_the_event_names_the_other_browser() -> None:
    session = Session.start(100, T0)
    signed_in(session, 1, ALICE)
    signed_in(session, 2, BOB)
    session.switch_sign_in(1, T0)
    session.collect_events()
    later = T0 + timedelta(minutes=1)
    session.sign_out_remotely(1, ALICE, PHONE_SESSION, PHONE_SIGN_IN, later)
    (ended,) = session.collect_events()
    assert type(ended).__name__ == "SignedOutRemotely"
    assert (ended.sign_in_id, ended.by_session_id, ended.by_sign_in_id) == (  # type: ignore[attr-defined]
        1, PHONE_SESSION, PHONE_SIGN_IN,
    )  # fmt: skip
    assert [s.id for s in session.live_sign_ins(later)] == [2]
    assert session.active_sign_in_id is None  # it was the active one


def test_another_users_ended_or_unknown_sign_in_is_refused_and_nothing_recorded() -> None:
    session = Session.start(100, T0)
    signed_in(session, 1, ALICE)
    signed_in(session, 2, BOB)
    session.sign_out(2, T0)
    session.collect_events()
    for sign_in_id, user_id in [(1, BOB), (2, BOB), (3, ALICE), (None, ALICE)]:
        with pytest.raises(InvalidSignInId):
            session.sign_out_remotely(sign_in_id, user_id, PHONE_SESSION, PHONE_SIGN_IN, T0)
    with pytest.raises(InvalidSignInId):  # past its lifetime
        session.sign_out_remotely(1, ALICE, PHONE_SESSION, PHONE_SIGN_IN, T0 + LIFETIME)
    assert event_names(session) == []
    assert [s.id for s in session.live_sign_ins(T0)] == [1]
