"""How accounts enter a Session: the commands of its sign-in and sign-up attempts.

:class:`~domain.session.Session` mixes these in beside its commands on live sign-ins. They
check first, then call the change methods that ``Session`` binds to their events
(``_attempt``, ``_fail_attempt``, …), so each decision is recorded as an event; on
:class:`~domain.session_state.SessionState` alone those methods would only assign.
"""

from __future__ import annotations

import hmac
from datetime import datetime

from domain.errors import InvalidAttempt, InvalidSignInId
from domain.session_state import SessionState
from domain.values import (
    FIRST_STEP,
    ActiveContext,
    AttemptKind,
    CodeVerdict,
    FailureReason,
    SignInAttempt,
    SignInMethod,
    SignInStep,
)

# Wrong or stale codes an attempt survives; the fifth ends it.
MAX_CODE_FAILURES = 5


class SignInAttempts(SessionState):
    """Start an attempt, send and check its codes, and complete it with a sign-in or an
    account."""

    def attempt_sign_in(
        self,
        attempt_id: int,
        method: SignInMethod,
        user_id: int | None,
        identifier_digest: str,
        expires_at: datetime,
        max_sign_ins: int,
        now: datetime,
    ) -> None:
        """Record that someone started to sign in; the password or code is never recorded.

        Refused before anything is recorded when ``user_id`` already has a live sign-in here
        or the session is full. An emailed-code attempt is refused by a full session
        whatever the email, known or not, so the answer tells nothing about the account.
        """
        if method == SignInMethod.EMAIL_OTP:
            self.check_room(max_sign_ins, now)
        if user_id is not None:
            self.check_can_sign_in(user_id, max_sign_ins, now)
        self._attempt(
            attempt_id=attempt_id,
            method=method,
            current_step=FIRST_STEP[method],
            expires_at=expires_at,
            user_id=user_id,
            identifier_digest=identifier_digest,
            timestamp=now,
        )

    def reject_credentials(self, attempt_id: int, now: datetime) -> None:
        """Record that a password attempt's email and password matched no account; a
        password attempt ends at its first failure."""
        attempt = self.open_attempt(attempt_id, now)
        if attempt.method != SignInMethod.PLAIN_EMAIL:
            raise InvalidAttempt
        self._fail_attempt(
            attempt_id=attempt.id,
            reason=FailureReason.INVALID_CREDENTIALS,
            terminal=True,
            timestamp=now,
        )

    def attempt_sign_up(
        self,
        attempt_id: int,
        user_id: int,
        identifier_digest: str,
        expires_at: datetime,
        now: datetime,
    ) -> None:
        """Record that someone started to create an account (its details are kept elsewhere)."""
        self._attempt_sign_up(
            attempt_id=attempt_id,
            user_id=user_id,
            identifier_digest=identifier_digest,
            expires_at=expires_at,
            timestamp=now,
        )

    def prepare_verification(
        self, attempt_id: int | None, code_digest: str, code_expires_at: datetime, now: datetime
    ) -> SignInAttempt:
        """Record that a new one-time code was sent (its keyed hash only); the old one is void."""
        attempt = self.open_attempt(attempt_id, now)
        if attempt.current_step not in (SignInStep.VERIFY_EMAIL_OTP, SignInStep.VERIFY_EMAIL):
            raise InvalidAttempt
        self._prepare(
            attempt_id=attempt.id,
            code_digest=code_digest,
            code_expires_at=code_expires_at,
            timestamp=now,
        )
        return attempt

    def verify_code(self, attempt_id: int | None, code_digest: str, now: datetime) -> CodeVerdict:
        """Check a code's keyed hash against the one last sent for an open attempt.

        A wrong or stale code is a decision, not an error: it is recorded (the fifth failure
        ends the attempt) and the verdict says it was not accepted. Only an attempt that is
        not open raises, before anything is recorded.
        """
        attempt = self.open_attempt(attempt_id, now)
        sent = attempt.code_digest
        expired = attempt.code_expires_at is None or now >= attempt.code_expires_at
        if sent is not None and not expired and hmac.compare_digest(sent, code_digest):
            return CodeVerdict(attempt, accepted=True)
        self._fail_attempt(
            attempt_id=attempt.id,
            reason=(
                FailureReason.CODE_EXPIRED
                if sent is not None and expired
                else FailureReason.INVALID_CODE
            ),
            terminal=attempt.failures + 1 >= MAX_CODE_FAILURES,
            timestamp=now,
        )
        return CodeVerdict(attempt, accepted=False)

    def complete_sign_up(self, attempt_id: int, now: datetime) -> int:
        """Record that a verified sign-up created its account; return the new user's id."""
        attempt = self.open_attempt(attempt_id, now)
        if attempt.kind != AttemptKind.SIGN_UP or attempt.user_id is None:
            raise InvalidAttempt
        self._complete_sign_up(attempt_id=attempt.id, user_id=attempt.user_id, timestamp=now)
        return attempt.user_id

    def complete_sign_in(
        self,
        attempt_id: int,
        sign_in_id: int,
        user_id: int,
        expires_at: datetime,
        context: ActiveContext,
        max_sign_ins: int,
        now: datetime,
    ) -> None:
        """Add a sign-in for ``user_id`` from a verified attempt and make it active.

        Refused before anything is recorded when the user already has a live sign-in here,
        the session is full, or the attempt is over.
        """
        self.check_can_sign_in(user_id, max_sign_ins, now)
        attempt = self.attempt(attempt_id)
        if attempt is None or attempt.completed or attempt.failed:
            raise InvalidAttempt
        if any(s.id == sign_in_id for s in self.sign_ins):
            raise InvalidSignInId("Sign-in id collision; retry.")
        self._complete(
            attempt_id=attempt_id,
            sign_in_id=sign_in_id,
            user_id=user_id,
            method=SignInMethod(attempt.method),
            expires_at=expires_at,
            organization_membership_id=context.organization_membership_id,
            workspace_membership_id=context.workspace_membership_id,
            timestamp=now,
        )
