"""What a Session holds, the questions its commands ask of it, and how each event changes it.

:class:`~domain.session.Session` mixes this in and binds each change to its event class
(``_attempt = event(SignInAttempted)(SessionState._attempt)``), so the changes run both when a
command records an event and when stored events are replayed. They only assign; nothing here
decides or records anything.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from domain.errors import (
    InvalidAttempt,
    InvalidSignInId,
    MaxSignInsReached,
    NoActiveSignIn,
    UserAlreadySignedIn,
)
from domain.values import (
    AttemptKind,
    FailureReason,
    SignIn,
    SignInAttempt,
    SignInMethod,
    SignInStep,
    sign_in_ends_at,
)

# Attempts past their lifetime are pruned from the state when the next one starts (their
# events remain); the API stops showing them at expiry, and a busy session's state (and so
# every command on it) would otherwise grow with a day's worth of attempts.
ATTEMPT_RETENTION = timedelta(0)


class SessionState:
    """The sign-ins of a session, its recent attempts, and which sign-in is active."""

    session_id: int
    sign_ins: list[SignIn]
    attempts: list[SignInAttempt]
    active_sign_in_id: int | None

    def live_sign_ins(self, now: datetime) -> list[SignIn]:
        """Sign-ins that are neither ended nor past their lifetime at ``now``."""
        return [s for s in self.sign_ins if s.is_live(now)]

    def live_sign_in(self, sign_in_id: int | None, now: datetime) -> SignIn:
        """The live sign-in with that id, or InvalidSignInId whatever else is wrong."""
        for sign_in in self.live_sign_ins(now):
            if sign_in.id == sign_in_id:
                return sign_in
        raise InvalidSignInId

    def active_sign_in(self, now: datetime) -> SignIn:
        """The active sign-in, or NoActiveSignIn."""
        if self.active_sign_in_id is None:
            raise NoActiveSignIn
        for sign_in in self.live_sign_ins(now):
            if sign_in.id == self.active_sign_in_id:
                return sign_in
        raise NoActiveSignIn

    def attempt(self, attempt_id: int) -> SignInAttempt | None:
        """The attempt with that id, if the state still holds it."""
        return next((a for a in self.attempts if a.id == attempt_id), None)

    def check_can_sign_in(self, user_id: int, max_sign_ins: int, now: datetime) -> None:
        """Raise unless ``user_id`` could be added as a new sign-in now."""
        if any(s.user_id == user_id for s in self.live_sign_ins(now)):
            raise UserAlreadySignedIn
        self.check_room(max_sign_ins, now)

    def check_room(self, max_sign_ins: int, now: datetime) -> None:
        """Raise MaxSignInsReached if the session cannot take another sign-in."""
        if len(self.live_sign_ins(now)) >= max_sign_ins:
            raise MaxSignInsReached

    def open_attempt(self, attempt_id: int | None, now: datetime) -> SignInAttempt:
        """The open attempt with that id, or InvalidAttempt whatever else is wrong."""
        attempt = self.attempt(attempt_id) if attempt_id is not None else None
        if attempt is None or not attempt.is_open(now):
            raise InvalidAttempt
        return attempt

    def due_expiries(
        self, now: datetime, idle_timeout: timedelta | None = None
    ) -> list[tuple[int, datetime]]:
        """(sign-in id, when it expired) of each sign-in past its lifetime or idle too long."""
        due = []
        for sign_in in self.sign_ins:
            ended = sign_in_ends_at(sign_in.expires_at, sign_in.last_active_at, idle_timeout)
            if ended <= now:
                due.append((sign_in.id, ended))
        return due

    # How each event changes the state: assignments only (Session binds each to its event)

    def _attempt(
        self,
        attempt_id: int,
        method: SignInMethod,
        current_step: SignInStep | None,
        expires_at: datetime,
        user_id: int | None,
        identifier_digest: str,
        timestamp: datetime,
    ) -> None:
        self._add_attempt(
            SignInAttempt(
                id=attempt_id,
                method=method,
                created_at=timestamp,
                updated_at=timestamp,
                expires_at=expires_at,
                current_step=current_step,
                user_id=user_id,
            )
        )

    def _attempt_sign_up(
        self,
        attempt_id: int,
        user_id: int,
        identifier_digest: str,
        expires_at: datetime,
        timestamp: datetime,
    ) -> None:
        self._add_attempt(
            SignInAttempt(
                id=attempt_id,
                method=SignInMethod.EMAIL_OTP,
                created_at=timestamp,
                updated_at=timestamp,
                expires_at=expires_at,
                current_step=SignInStep.VERIFY_EMAIL,
                kind=AttemptKind.SIGN_UP,
                user_id=user_id,
            )
        )

    def _prepare(
        self, attempt_id: int, code_digest: str, code_expires_at: datetime, timestamp: datetime
    ) -> None:
        attempt = self.attempt(attempt_id)
        assert attempt is not None
        attempt.code_digest = code_digest
        attempt.code_expires_at = code_expires_at
        attempt.updated_at = timestamp

    def _complete_sign_up(self, attempt_id: int, user_id: int, timestamp: datetime) -> None:
        attempt = self.attempt(attempt_id)
        assert attempt is not None
        attempt.current_step = None
        attempt.updated_at = timestamp

    def _fail_attempt(
        self, attempt_id: int, reason: FailureReason, terminal: bool, timestamp: datetime
    ) -> None:
        attempt = self.attempt(attempt_id)
        assert attempt is not None
        attempt.updated_at = timestamp
        attempt.failures += 1
        attempt.failed = attempt.failed or terminal

    def _complete(
        self,
        attempt_id: int,
        sign_in_id: int,
        user_id: int,
        method: SignInMethod,
        expires_at: datetime,
        organization_membership_id: int | None,
        workspace_membership_id: int | None,
        timestamp: datetime,
    ) -> None:
        attempt = self.attempt(attempt_id)
        if attempt is not None:
            attempt.completed = True
            attempt.current_step = None
            attempt.code_digest = None
            attempt.updated_at = timestamp
        self.sign_ins.append(
            SignIn(
                id=sign_in_id,
                user_id=user_id,
                method=method,
                created_at=timestamp,
                updated_at=timestamp,
                expires_at=expires_at,
                last_active_at=timestamp,
                organization_membership_id=organization_membership_id,
                workspace_membership_id=workspace_membership_id,
            )
        )
        self.active_sign_in_id = sign_in_id

    def _switch(self, from_sign_in_id: int | None, sign_in_id: int, timestamp: datetime) -> None:
        self.active_sign_in_id = sign_in_id
        for sign_in in self.sign_ins:
            if sign_in.id == sign_in_id:
                sign_in.last_active_at = timestamp

    def _activate(
        self,
        sign_in_id: int,
        user_id: int,
        organization_membership_id: int | None,
        workspace_membership_id: int | None,
        timestamp: datetime,
    ) -> None:
        for sign_in in self.sign_ins:
            if sign_in.id == sign_in_id:
                sign_in.organization_membership_id = organization_membership_id
                sign_in.workspace_membership_id = workspace_membership_id
                sign_in.updated_at = timestamp
                sign_in.last_active_at = timestamp

    def _note_activity(self, sign_in_id: int, timestamp: datetime) -> None:
        for sign_in in self.sign_ins:
            if sign_in.id == sign_in_id:
                sign_in.last_active_at = timestamp

    def _sign_out(self, sign_in_id: int, timestamp: datetime) -> None:
        self._end([sign_in_id])

    def _sign_out_remotely(
        self, sign_in_id: int, by_session_id: int, by_sign_in_id: int, timestamp: datetime
    ) -> None:
        self._end([sign_in_id])

    def _sign_out_all(self, sign_in_ids: list[int], timestamp: datetime) -> None:
        self._end(sign_in_ids)

    def _expire(self, sign_in_id: int, expired_at: datetime, timestamp: datetime) -> None:
        self._end([sign_in_id])

    def _add_attempt(self, attempt: SignInAttempt) -> None:
        # Forget attempts long over (their events remain), so the state stays small.
        horizon = attempt.created_at
        self.attempts = [a for a in self.attempts if a.expires_at + ATTEMPT_RETENTION > horizon]
        self.attempts.append(attempt)

    def _end(self, sign_in_ids: list[int]) -> None:
        self.sign_ins = [s for s in self.sign_ins if s.id not in sign_in_ids]
        if self.active_sign_in_id in sign_in_ids:
            self.active_sign_in_id = None
