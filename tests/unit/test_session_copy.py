"""The copy of a session that each command works on is independent of the cached one."""

from __future__ import annotations

import copy
from datetime import timedelta

from domain.session import Session
from domain.values import SignInMethod
from tests.unit.test_session import T0, signed_in


def state(session: Session) -> str:
    return repr((session.version, session.sign_ins, session.attempts, session.active_sign_in_id))


def test_a_command_on_the_copy_leaves_the_original_as_it_was() -> None:
    # Given a cached session with two sign-ins, an expired attempt and no pending events
    original = Session.start(1, T0)
    signed_in(original, 11, 101)
    signed_in(original, 12, 102)
    original.attempt_sign_in(
        13, SignInMethod.PLAIN_EMAIL, None, "d", T0 + timedelta(minutes=1), 5, T0
    )
    original.collect_events()
    before = state(original)

    # When a command runs on the copy the library hands out
    clone = copy.deepcopy(original)
    assert state(clone) == before
    clone.switch_sign_in(11, T0 + timedelta(hours=1))
    clone.note_activity(T0 + timedelta(hours=2), timedelta(minutes=15))
    clone.sign_out(12, T0 + timedelta(hours=3))

    # Then the copy changed and recorded events; the original did neither
    assert state(clone) != before
    assert clone.pending_events
    assert state(original) == before
    assert original.pending_events == []
    assert all(a is not b for a, b in zip(clone.sign_ins, original.sign_ins, strict=False))


def test_the_copy_knows_every_attribute_of_a_session() -> None:
    # Session.__deepcopy__ copies these by hand; a new attribute must be added there too.
    session = Session.start(1, T0)
    assert set(vars(session)) == {
        "_id", "_version", "_created_on", "_modified_on", "_pending_events",
        "session_id", "sign_ins", "attempts", "active_sign_in_id",
    }  # fmt: skip
