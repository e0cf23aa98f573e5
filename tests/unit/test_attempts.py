"""The Session aggregate guards its attempts itself: who may start one, and what a code decides."""

from __future__ import annotations

from datetime import timedelta

import pytest
from eventsourcing.utils import get_topic

from domain.errors import InvalidAttempt, MaxSignInsReached, UserAlreadySignedIn
from domain.session import Session
from domain.session_attempts import MAX_CODE_FAILURES
from domain.values import FailureReason, SignInMethod, SignInStep
from tests.unit.test_session import T0, event_names, signed_in

MINUTE = timedelta(minutes=1)


def code_attempt(session: Session, attempt_id: int, user_id: int | None) -> None:
    session.attempt_sign_in(
        attempt_id, SignInMethod.EMAIL_OTP, user_id, "d", T0 + 30 * MINUTE, 2, T0
    )


def test_an_attempt_waits_for_the_step_its_method_needs() -> None:
    session = Session.start(1, T0)
    code_attempt(session, 7, 11)
    session.attempt_sign_in(8, SignInMethod.PLAIN_EMAIL, 12, "d", T0 + MINUTE, 2, T0)
    steps = {a.id: a.current_step for a in session.attempts}
    assert steps == {7: SignInStep.VERIFY_EMAIL_OTP, 8: SignInStep.VERIFY_PASSWORD}


def test_a_user_already_signed_in_cannot_start_another_attempt() -> None:
    session = Session.start(1, T0)
    signed_in(session, 1, 11)
    session.collect_events()
    for method in SignInMethod:
        with pytest.raises(UserAlreadySignedIn):
            session.attempt_sign_in(9, method, 11, "d", T0 + MINUTE, 5, T0)
    assert event_names(session) == []


def test_a_full_session_refuses_a_code_attempt_for_any_email_and_a_password_for_a_known_one() -> (
    None
):
    session = Session.start(1, T0)
    signed_in(session, 1, 11)
    signed_in(session, 2, 22)
    session.collect_events()
    with pytest.raises(MaxSignInsReached):
        code_attempt(session, 9, None)  # unknown email: the same answer as a known one
    with pytest.raises(MaxSignInsReached):
        session.attempt_sign_in(9, SignInMethod.PLAIN_EMAIL, 33, "d", T0 + MINUTE, 2, T0)
    assert event_names(session) == []
    # A wrong password on a full session is still only a wrong password
    session.attempt_sign_in(9, SignInMethod.PLAIN_EMAIL, None, "d", T0 + MINUTE, 2, T0)
    session.reject_credentials(9, T0)
    assert event_names(session) == ["SignInAttempted", "SignInAttemptFailed"]
    attempt = session.attempt(9)
    assert attempt is not None
    assert attempt.failed


def test_a_wrong_code_is_a_recorded_decision_and_the_fifth_ends_the_attempt() -> None:
    session = Session.start(1, T0)
    code_attempt(session, 7, 11)
    session.prepare_verification(7, "right", T0 + 10 * MINUTE, T0)
    session.collect_events()
    for tries in range(1, MAX_CODE_FAILURES + 1):
        verdict = session.verify_code(7, "wrong", T0 + MINUTE)
        assert not verdict.accepted
        assert (verdict.attempt.failures, verdict.attempt.failed) == (
            tries,
            tries == MAX_CODE_FAILURES,
        )
    failures = session.collect_events()
    assert [e.reason for e in failures] == [FailureReason.INVALID_CODE] * MAX_CODE_FAILURES  # type: ignore[attr-defined]
    with pytest.raises(InvalidAttempt):  # over: refused, and nothing recorded
        session.verify_code(7, "right", T0 + MINUTE)
    assert event_names(session) == []


def test_a_stale_code_is_recorded_as_expired_and_the_right_one_is_accepted_unrecorded() -> None:
    session = Session.start(1, T0)
    code_attempt(session, 7, 11)
    session.prepare_verification(7, "first", T0 + MINUTE, T0)
    session.collect_events()
    assert not session.verify_code(7, "first", T0 + 2 * MINUTE).accepted
    assert [e.reason for e in session.collect_events()] == [FailureReason.CODE_EXPIRED]  # type: ignore[attr-defined]
    session.prepare_verification(7, "second", T0 + 10 * MINUTE, T0 + 2 * MINUTE)
    session.collect_events()
    verdict = session.verify_code(7, "second", T0 + 3 * MINUTE)
    assert verdict.accepted
    assert verdict.attempt.id == 7
    assert event_names(session) == []


def test_the_activity_event_keeps_its_first_topic() -> None:
    session = Session.start(1, T0)
    signed_in(session, 1, 11)
    session.collect_events()
    session.note_activity(T0 + timedelta(hours=1), timedelta(minutes=15))
    (noted,) = session.collect_events()
    assert type(noted).__name__ == "SignInActivityNoted"
    assert get_topic(type(noted)) == "session-ledger:Session.SignInActive"
