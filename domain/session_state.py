"""What a Session holds and the questions its commands ask of it, apart from the commands.

:class:`~domain.session.Session` mixes this in; nothing here records an event.
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
from domain.values import SignIn, SignInAttempt

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
            idle_until = sign_in.last_active_at + idle_timeout if idle_timeout else None
            ended = min(sign_in.expires_at, idle_until) if idle_until else sign_in.expires_at
            if ended <= now:
                due.append((sign_in.id, ended))
        return due

    # Helpers of the event methods: assignments only ---------------------------------------

    def _add_attempt(self, attempt: SignInAttempt) -> None:
        # Forget attempts long over (their events remain), so the state stays small.
        horizon = attempt.created_at
        self.attempts = [a for a in self.attempts if a.expires_at + ATTEMPT_RETENTION > horizon]
        self.attempts.append(attempt)

    def _end(self, sign_in_ids: list[int]) -> None:
        self.sign_ins = [s for s in self.sign_ins if s.id not in sign_in_ids]
        if self.active_sign_in_id in sign_in_ids:
            self.active_sign_in_id = None
