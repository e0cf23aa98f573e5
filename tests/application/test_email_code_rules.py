"""Rules of the emailed one-time code, in milliseconds: the in-memory store, an in-process
mailer, a settable clock and predictable codes.

Sign-in and sign-up by code: a code works once, for its own attempt, until it expires; a new
code voids the one before; the fifth wrong code ends the attempt; an attempt gets at most
``codes_per_attempt`` codes; an unknown email goes the same way with its mail discarded.
Over HTTP with a real SMTP server these stories are in tests/auth/test_email_code_sign_in.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import pytest

from application.authentication import Authenticator
from application.email_codes import DISCARDED
from application.errors import RateLimited, UnsupportedStrategy
from application.session_commands import CommandResult
from domain.errors import InvalidAttempt, InvalidCode
from domain.ids import aggregate_uuid
from domain.session_attempts import MAX_CODE_FAILURES
from infrastructure.clock import SettableClock
from infrastructure.container import Services
from tests.helpers import ALICE, BOB, SequentialCodes, services_for

CODE_LIFETIME = timedelta(minutes=10)
CODES_PER_ATTEMPT = 5
DORA = {
    "first_name": "Dora",
    "last_name": "Quixwell",
    "email": "dora@example.com",
    "password": "dora-secret-passphrase",
}


@dataclass(frozen=True)
class Sent:
    """One code handed to the mailer."""

    to: str
    code: str
    purpose: str
    valid_minutes: int
    deliver: bool


class InProcessMailer:
    """The ``Mailer`` port, keeping every code it is asked to send, in order."""

    def __init__(self) -> None:
        self.sent: list[Sent] = []

    def send_code(
        self, to: str, code: str, purpose: str, valid_minutes: int, deliver: bool = True
    ) -> None:
        """Keep the message instead of queueing it."""
        self.sent.append(Sent(to, code, purpose, valid_minutes, deliver))

    def delivered_to(self, address: str) -> list[str]:
        """The codes really sent to ``address``, oldest first."""
        return [s.code for s in self.sent if s.deliver and s.to == address]


@dataclass
class Codes:
    """The authenticator under test and what it works with."""

    auth: Authenticator
    services: Services
    clock: SettableClock
    mailer: InProcessMailer
    codes: SequentialCodes

    def session(self) -> tuple[int, str | None]:
        """A new session's id and cookie token."""
        started = self.services.commands.start_session()
        return int(started.document.id), started.new_token

    def started(self, session_id: int, email: str) -> str:
        """Start an email-code sign-in; the new attempt's id."""
        before = {a.id for a in self.services.queries.get_session(session_id).signin_attempts}
        document = self.auth.start_email_code_sign_in(session_id, email).document
        [attempt] = [a.id for a in document.signin_attempts if a.id not in before]
        return attempt

    def send(self, session_id: int, attempt_id: str) -> str:
        """Ask for a code for the attempt; the code the service made."""
        self.auth.prepare_verification(session_id, attempt_id, "email_otp")
        return self.codes.sent[-1]

    def verify(
        self, session_id: int, attempt_id: str, code: str, token: str | None = None
    ) -> CommandResult:
        """Send a code for the attempt."""
        return self.auth.attempt_verification(session_id, attempt_id, code, token)

    def event_names(self, session_id: int) -> list[str]:
        """The session's stored events, by class name."""
        return [
            type(e).__name__ for e in self.services.sessions.events.get(aggregate_uuid(session_id))
        ]


@pytest.fixture
def subject() -> Iterator[Codes]:
    """An authenticator on the in-memory store mailing in process, with predictable codes."""
    clock = SettableClock()
    codes = SequentialCodes()
    mailer = InProcessMailer()
    with services_for(
        "memory://",
        clock=clock,
        new_code=codes,
        mailer=mailer,
        code_lifetime_seconds=int(CODE_LIFETIME.total_seconds()),
        rate_limit_codes_per_attempt=CODES_PER_ATTEMPT,
    ) as services:
        auth = services.auth
        yield Codes(auth, services, clock, mailer, codes)


def wrong(code: str) -> str:
    """A well-formed code that is never sent (sent codes are even)."""
    return f"{int(code) + 1:06d}"


def test_the_code_mailed_to_the_account_signs_it_in(subject: Codes) -> None:
    # Given Alice's code sign-in, and her code asked for
    session_id, token = subject.session()
    attempt = subject.started(session_id, ALICE[0])
    code = subject.send(session_id, attempt)

    # Then the code went to her address, for a sign-in, valid for ten minutes
    assert subject.mailer.sent == [Sent(ALICE[0], code, "sign-in", 10, True)]

    # When it is sent back
    result = subject.verify(session_id, attempt, code, token)

    # Then Alice is signed in and active, with a new cookie token
    (alice,) = result.document.signins
    assert alice.user_id == ALICE[2]
    assert result.document.active_signin_id == alice.id
    assert result.new_token not in (None, token)
    assert [a.completed for a in result.document.signin_attempts] == [True]
    assert subject.event_names(session_id) == [
        "Started", "SignInAttempted", "VerificationPrepared", "SignInCompleted",
    ]  # fmt: skip


def test_a_code_works_until_it_expires(subject: Codes) -> None:
    session_id, token = subject.session()
    attempt = subject.started(session_id, ALICE[0])

    # Given a code, when its lifetime has passed, then it is refused
    stale = subject.send(session_id, attempt)
    subject.clock.advance(CODE_LIFETIME)
    with pytest.raises(InvalidCode):
        subject.verify(session_id, attempt, stale, token)

    # Given a new code, when it is used a second before its lifetime is up, then it works
    fresh = subject.send(session_id, attempt)
    subject.clock.advance(CODE_LIFETIME - timedelta(seconds=1))
    assert subject.verify(session_id, attempt, fresh, token).document.active_signin is not None


def test_no_code_is_valid_before_one_was_sent(subject: Codes) -> None:
    session_id, token = subject.session()
    attempt = subject.started(session_id, ALICE[0])
    with pytest.raises(InvalidCode):
        subject.verify(session_id, attempt, "100000", token)
    assert subject.mailer.sent == []


@pytest.mark.parametrize("malformed", [None, "", "12345", "1234567", "abcdef", " 100000"])
def test_a_malformed_code_is_refused_before_anything_is_recorded(
    subject: Codes, malformed: str | None
) -> None:
    session_id, token = subject.session()
    attempt = subject.started(session_id, ALICE[0])
    subject.send(session_id, attempt)
    before = subject.event_names(session_id)
    with pytest.raises(InvalidCode):
        subject.auth.attempt_verification(session_id, attempt, malformed, token)
    assert subject.event_names(session_id) == before


def test_wrong_codes_short_of_the_limit_leave_the_right_one_working(subject: Codes) -> None:
    # Given a code sent, and one wrong code fewer than the limit tried
    session_id, token = subject.session()
    attempt = subject.started(session_id, ALICE[0])
    code = subject.send(session_id, attempt)
    for _ in range(MAX_CODE_FAILURES - 1):
        with pytest.raises(InvalidCode):
            subject.verify(session_id, attempt, wrong(code), token)

    # Then each failure was recorded, and the right code still signs Alice in
    assert subject.event_names(session_id).count("SignInAttemptFailed") == MAX_CODE_FAILURES - 1
    assert subject.verify(session_id, attempt, code, token).document.active_signin is not None


def test_the_last_wrong_code_allowed_ends_the_attempt(subject: Codes) -> None:
    # Given a code sent, and as many wrong codes tried as an attempt allows
    session_id, token = subject.session()
    attempt = subject.started(session_id, ALICE[0])
    code = subject.send(session_id, attempt)
    for _ in range(MAX_CODE_FAILURES):
        with pytest.raises(InvalidCode):
            subject.verify(session_id, attempt, wrong(code), token)

    # Then the attempt is over: the right code is refused, and no new code is sent
    with pytest.raises(InvalidAttempt):
        subject.verify(session_id, attempt, code, token)
    with pytest.raises(InvalidAttempt):
        subject.send(session_id, attempt)
    assert subject.mailer.delivered_to(ALICE[0]) == [code]
    assert subject.services.queries.get_session(session_id).signins == []


def test_a_new_code_voids_the_one_before(subject: Codes) -> None:
    session_id, token = subject.session()
    attempt = subject.started(session_id, ALICE[0])
    old = subject.send(session_id, attempt)
    new = subject.send(session_id, attempt)
    assert subject.mailer.delivered_to(ALICE[0]) == [old, new]

    with pytest.raises(InvalidCode):
        subject.verify(session_id, attempt, old, token)
    assert subject.verify(session_id, attempt, new, token).document.active_signin is not None


def test_an_attempt_gets_a_limited_number_of_codes(subject: Codes) -> None:
    # Given an attempt that has had as many codes as it may
    session_id, token = subject.session()
    attempt = subject.started(session_id, ALICE[0])
    for _ in range(CODES_PER_ATTEMPT):
        last = subject.send(session_id, attempt)

    # When it asks for one more, then it is refused and nothing is sent
    with pytest.raises(RateLimited):
        subject.auth.prepare_verification(session_id, attempt, "email_otp")
    assert len(subject.mailer.delivered_to(ALICE[0])) == CODES_PER_ATTEMPT

    # And the last code sent still works
    assert subject.verify(session_id, attempt, last, token).document.active_signin is not None


def test_a_code_works_only_for_its_own_attempt(subject: Codes) -> None:
    # Given one session with an attempt for Alice and one for Bob, each with its code
    session_id, token = subject.session()
    for_alice = subject.started(session_id, ALICE[0])
    alice_code = subject.send(session_id, for_alice)
    for_bob = subject.started(session_id, BOB[0])
    bob_code = subject.send(session_id, for_bob)
    assert subject.mailer.delivered_to(BOB[0]) == [bob_code]

    # When Alice's code is sent for Bob's attempt, then it is refused
    with pytest.raises(InvalidCode):
        subject.verify(session_id, for_bob, alice_code, token)

    # And it still signs Alice in on her own attempt
    signed_in = subject.verify(session_id, for_alice, alice_code, token).document
    assert [s.user_id for s in signed_in.signins] == [ALICE[2]]


def test_a_used_code_cannot_be_replayed(subject: Codes) -> None:
    # Given Alice signed in with a code, and signed out again
    session_id, token = subject.session()
    attempt = subject.started(session_id, ALICE[0])
    code = subject.send(session_id, attempt)
    token = subject.verify(session_id, attempt, code, token).new_token
    subject.services.commands.sign_out(session_id, None, token)

    # When the same code is sent again, then its attempt is over
    with pytest.raises(InvalidAttempt):
        subject.verify(session_id, attempt, code, token)
    assert subject.services.queries.get_session(session_id).signins == []


def test_another_sessions_attempt_is_not_the_callers(subject: Codes) -> None:
    # Given Alice's attempt with its code, in her session
    alice_session, alice_token = subject.session()
    attempt = subject.started(alice_session, ALICE[0])
    code = subject.send(alice_session, attempt)

    # When another session asks a code for it, or sends her code for it
    other_session, other_token = subject.session()
    with pytest.raises(InvalidAttempt):
        subject.send(other_session, attempt)
    with pytest.raises(InvalidAttempt):
        subject.verify(other_session, attempt, code, other_token)

    # Then Alice got no second code, and hers still signs her in
    assert subject.mailer.delivered_to(ALICE[0]) == [code]
    assert subject.verify(alice_session, attempt, code, alice_token).document.signins


@pytest.mark.parametrize("raw", [None, "", "not-an-id", "0", "01"])
def test_a_malformed_attempt_id_is_an_invalid_attempt(subject: Codes, raw: str | None) -> None:
    session_id, token = subject.session()
    with pytest.raises(InvalidAttempt):
        subject.auth.prepare_verification(session_id, raw, "email_otp")
    with pytest.raises(InvalidAttempt):
        subject.auth.attempt_verification(session_id, raw, "100000", token)
    assert subject.mailer.sent == []


def test_only_the_email_code_strategy_prepares_a_verification(subject: Codes) -> None:
    session_id, _ = subject.session()
    attempt = subject.started(session_id, ALICE[0])
    with pytest.raises(UnsupportedStrategy):
        subject.auth.prepare_verification(session_id, attempt, "phone_code")
    assert subject.mailer.sent == []


def test_an_unknown_email_gets_a_code_made_and_discarded(subject: Codes) -> None:
    # Given a code sign-in for an address with no account
    session_id, token = subject.session()
    attempt = subject.started(session_id, "nobody-here@example.com")

    # When its code is asked for, then one is made and handed over, but never delivered
    code = subject.send(session_id, attempt)
    assert subject.mailer.sent == [Sent(DISCARDED, code, "sign-in", 10, False)]

    # And even that code signs nobody in
    with pytest.raises(InvalidCode):
        subject.verify(session_id, attempt, code, token)
    assert subject.services.queries.get_session(session_id).signins == []


def test_a_sign_up_is_verified_by_its_emailed_code(subject: Codes) -> None:
    # Given a sign-up, and its code asked for
    session_id, token = subject.session()
    attempt = subject.auth.sign_up(session_id, dict(DORA)).document.signup_attempts[0].id
    code = subject.send(session_id, attempt)
    assert subject.mailer.sent == [Sent(DORA["email"], code, "sign-up", 10, True)]

    # When a wrong code and then the right one are sent
    with pytest.raises(InvalidCode):
        subject.verify(session_id, attempt, wrong(code), token)
    signed_in = subject.verify(session_id, attempt, code, token).document

    # Then the account exists and is signed in, and its password works from now on
    assert signed_in.active_signin is not None
    assert signed_in.active_signin.user is not None
    assert signed_in.active_signin.user.primary_email_address.email == DORA["email"]
    other, other_token = subject.session()
    result = subject.auth.sign_in_with_password(other, DORA["email"], DORA["password"], other_token)
    assert result.document.active_signin is not None
