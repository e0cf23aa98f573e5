"""The Session aggregate: the accounts signed in to one browser and which one is active.

Commands check first and raise before anything changes; the private ``@event`` methods only
assign, so that replaying the stored events rebuilds exactly the state the commands built.
Times come in from the caller (an injected clock), never from the system clock here.
"""

from __future__ import annotations

import copy
import hmac
from datetime import datetime, timedelta
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.errors import (
    InvalidAttempt,
    InvalidCode,
    InvalidSignInId,
    MaxSignInsReached,
    NoActiveSignIn,
    NotAMember,
    UserAlreadySignedIn,
)
from domain.ids import aggregate_uuid
from domain.values import (
    ActiveContext,
    AttemptKind,
    EndReason,
    OrganizationMembershipFact,
    SignIn,
    SignInAttempt,
    SignInMethod,
    SignInStep,
    WorkspaceMembershipFact,
)

# Attempts past their lifetime are pruned from the state when the next one starts (their
# events remain); the API stops showing them at expiry, and a busy session's state (and so
# every command on it) would otherwise grow with a day's worth of attempts.
ATTEMPT_RETENTION = timedelta(0)
# Wrong or stale codes an attempt survives; the fifth ends it.
MAX_CODE_FAILURES = 5

_T = "session-ledger:Session"


class Session(Aggregate):
    """A browser session holding up to a configured number of live sign-ins."""

    TOPIC = _T

    class Created(Aggregate.Created):
        """Unused: the named creation event below is the one recorded."""

        TOPIC = f"{_T}.Created"

    @classmethod
    def start(cls, session_id: int, now: datetime) -> Session:
        """Start a new, anonymous session."""
        return cls(session_id=session_id, timestamp=now)

    @staticmethod
    def create_id(session_id: int) -> UUID:
        """The event store id of the session with that wire id."""
        return aggregate_uuid(session_id)

    @event("Started", topic=f"{_T}.Started")
    def __init__(self, session_id: int, timestamp: datetime) -> None:
        self.session_id = session_id
        self.sign_ins: list[SignIn] = []
        self.attempts: list[SignInAttempt] = []
        self.active_sign_in_id: int | None = None

    def __deepcopy__(self, memo: dict[int, object]) -> Session:
        """The copy the library makes of a cached session for each command, by hand: the
        state is lists of small mutable records (``SignIn``, ``SignInAttempt``) over immutable
        values, so copying the lists and the records is a deep copy, at about a tenth of
        ``copy.deepcopy``'s cost. (A test lists the attributes this relies on.)"""
        clone = copy.copy(self)
        clone._pending_events = list(self._pending_events)
        clone.sign_ins = [copy.copy(s) for s in self.sign_ins]
        clone.attempts = [copy.copy(a) for a in self.attempts]
        return clone

    # Queries ----------------------------------------------------------------------------

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

    # Commands ---------------------------------------------------------------------------

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

    def expire_sign_ins(self, now: datetime, idle_timeout: timedelta | None = None) -> None:
        """Record the expiry of every sign-in past its lifetime, or idle for ``idle_timeout``."""
        for sign_in_id, ended in self.due_expiries(now, idle_timeout):
            self._expire(sign_in_id=sign_in_id, expired_at=ended, timestamp=now)

    def note_activity(self, now: datetime, resolution: timedelta) -> None:
        """Record that the active sign-in is in use, at most once per ``resolution``."""
        if self.active_sign_in_id is None:
            return
        for sign_in in self.live_sign_ins(now):
            if sign_in.id == self.active_sign_in_id and now - sign_in.last_active_at >= resolution:
                self._note_activity(sign_in_id=sign_in.id, timestamp=now)

    def attempt_sign_in(
        self,
        attempt_id: int,
        method: str,
        current_step: str | None,
        expires_at: datetime,
        user_id: int | None,
        identifier_digest: str,
        now: datetime,
    ) -> None:
        """Record that someone started to sign in; the password or code is never recorded."""
        self._attempt(
            attempt_id=attempt_id,
            method=method,
            current_step=current_step,
            expires_at=expires_at,
            user_id=user_id,
            identifier_digest=identifier_digest,
            timestamp=now,
        )

    def fail_sign_in_attempt(
        self, attempt_id: int, reason: str, terminal: bool, now: datetime
    ) -> None:
        """Record a failed verification; a terminal failure ends the attempt."""
        if self.attempt(attempt_id) is None:
            raise InvalidAttempt
        self._fail_attempt(attempt_id=attempt_id, reason=reason, terminal=terminal, timestamp=now)

    def open_attempt(self, attempt_id: int | None, now: datetime) -> SignInAttempt:
        """The open attempt with that id, or InvalidAttempt whatever else is wrong."""
        attempt = self.attempt(attempt_id) if attempt_id is not None else None
        if attempt is None or not attempt.is_open(now):
            raise InvalidAttempt
        return attempt

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

    def verify_code(self, attempt_id: int | None, code_digest: str, now: datetime) -> SignInAttempt:
        """Check a code's keyed hash; a wrong or stale code is recorded, and the fifth ends it.

        Returns the attempt when the code matches; raises InvalidCode (after recording the
        failure, which the caller must save) when it does not.
        """
        attempt = self.open_attempt(attempt_id, now)
        sent = attempt.code_digest
        expired = attempt.code_expires_at is None or now >= attempt.code_expires_at
        if sent is not None and not expired and hmac.compare_digest(sent, code_digest):
            return attempt
        self._fail_attempt(
            attempt_id=attempt.id,
            reason="code_expired" if sent is not None and expired else "invalid_code",
            terminal=attempt.failures + 1 >= MAX_CODE_FAILURES,
            timestamp=now,
        )
        raise InvalidCode

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
        """Add a sign-in for ``user_id`` from a verified attempt and make it active."""
        attempt = self.attempt(attempt_id)
        if attempt is None or attempt.completed or attempt.failed:
            raise InvalidAttempt
        self.check_can_sign_in(user_id, max_sign_ins, now)
        if any(s.id == sign_in_id for s in self.sign_ins):
            raise InvalidSignInId("Sign-in id collision; retry.")
        self._complete(
            attempt_id=attempt_id,
            sign_in_id=sign_in_id,
            user_id=user_id,
            method=attempt.method,
            expires_at=expires_at,
            organization_membership_id=context.organization_membership_id,
            workspace_membership_id=context.workspace_membership_id,
            timestamp=now,
        )

    def switch_sign_in(self, sign_in_id: int | None, now: datetime) -> None:
        """Make a live sign-in the active one; switching to the active one records nothing."""
        target = self.live_sign_in(sign_in_id, now)
        if target.id == self.active_sign_in_id:
            return
        self._switch(from_sign_in_id=self.active_sign_in_id, sign_in_id=target.id, timestamp=now)

    def sign_out(self, sign_in_id: int | None, now: datetime) -> None:
        """End one live sign-in; the active one stays active unless it is the one ended."""
        target = self.live_sign_in(sign_in_id, now)
        self._sign_out(sign_in_id=target.id, timestamp=now)

    def sign_out_remotely(
        self,
        sign_in_id: int | None,
        user_id: int,
        by_session_id: int,
        by_sign_in_id: int,
        now: datetime,
    ) -> None:
        """End a live sign-in of ``user_id`` from another browser where the same user is
        active (a device list); the event records which session and sign-in did it."""
        target = self.live_sign_in(sign_in_id, now)
        if target.user_id != user_id:
            raise InvalidSignInId
        self._sign_out_remotely(
            sign_in_id=target.id,
            by_session_id=by_session_id,
            by_sign_in_id=by_sign_in_id,
            timestamp=now,
        )

    def sign_out_all(self, now: datetime) -> None:
        """End every live sign-in; the session stays, anonymous."""
        ids = [s.id for s in self.live_sign_ins(now)]
        if ids:
            self._sign_out_all(sign_in_ids=ids, timestamp=now)

    def activate_organization(
        self, membership: OrganizationMembershipFact | None, now: datetime
    ) -> None:
        """Make an organization membership active for the active sign-in (None clears both)."""
        sign_in = self.active_sign_in(now)
        if membership is not None and membership.user_id != sign_in.user_id:
            raise NotAMember
        self._activate_if_changed(
            sign_in,
            ActiveContext(membership.id if membership else None, None),
            now,
        )

    def activate_workspace(self, membership: WorkspaceMembershipFact | None, now: datetime) -> None:
        """Make a workspace membership and its parent active (None clears both)."""
        sign_in = self.active_sign_in(now)
        if membership is None:
            self._activate_if_changed(sign_in, ActiveContext(), now)
            return
        if membership.user_id != sign_in.user_id:
            raise NotAMember
        context = ActiveContext(membership.organization_membership.id, membership.id)
        self._activate_if_changed(sign_in, context, now)

    def _activate_if_changed(self, sign_in: SignIn, context: ActiveContext, now: datetime) -> None:
        current = ActiveContext(sign_in.organization_membership_id, sign_in.workspace_membership_id)
        if context == current:
            return
        self._activate(
            sign_in_id=sign_in.id,
            user_id=sign_in.user_id,
            organization_membership_id=context.organization_membership_id,
            workspace_membership_id=context.workspace_membership_id,
            timestamp=now,
        )

    # Events: assignments only -----------------------------------------------------------

    @event("SignInAttempted", topic=f"{_T}.SignInAttempted")
    def _attempt(
        self,
        attempt_id: int,
        method: str,
        current_step: str | None,
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

    @event("SignUpAttempted", topic=f"{_T}.SignUpAttempted")
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

    def _add_attempt(self, attempt: SignInAttempt) -> None:
        # Forget attempts long over (their events remain), so the state stays small.
        horizon = attempt.created_at
        self.attempts = [a for a in self.attempts if a.expires_at + ATTEMPT_RETENTION > horizon]
        self.attempts.append(attempt)

    @event("VerificationPrepared", topic=f"{_T}.VerificationPrepared")
    def _prepare(
        self, attempt_id: int, code_digest: str, code_expires_at: datetime, timestamp: datetime
    ) -> None:
        attempt = self.attempt(attempt_id)
        assert attempt is not None
        attempt.code_digest = code_digest
        attempt.code_expires_at = code_expires_at
        attempt.updated_at = timestamp

    @event("SignUpCompleted", topic=f"{_T}.SignUpCompleted")
    def _complete_sign_up(self, attempt_id: int, user_id: int, timestamp: datetime) -> None:
        attempt = self.attempt(attempt_id)
        assert attempt is not None
        attempt.current_step = None
        attempt.updated_at = timestamp

    @event("SignInAttemptFailed", topic=f"{_T}.SignInAttemptFailed")
    def _fail_attempt(
        self, attempt_id: int, reason: str, terminal: bool, timestamp: datetime
    ) -> None:
        attempt = self.attempt(attempt_id)
        assert attempt is not None
        attempt.updated_at = timestamp
        attempt.failures += 1
        attempt.failed = attempt.failed or terminal

    @event("SignInCompleted", topic=f"{_T}.SignInCompleted")
    def _complete(
        self,
        attempt_id: int,
        sign_in_id: int,
        user_id: int,
        method: str,
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

    @event("ActiveSignInSwitched", topic=f"{_T}.ActiveSignInSwitched")
    def _switch(self, from_sign_in_id: int | None, sign_in_id: int, timestamp: datetime) -> None:
        self.active_sign_in_id = sign_in_id
        for sign_in in self.sign_ins:
            if sign_in.id == sign_in_id:
                sign_in.last_active_at = timestamp

    @event("MembershipActivated", topic=f"{_T}.MembershipActivated")
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

    @event("SignInActive", topic=f"{_T}.SignInActive")
    def _note_activity(self, sign_in_id: int, timestamp: datetime) -> None:
        for sign_in in self.sign_ins:
            if sign_in.id == sign_in_id:
                sign_in.last_active_at = timestamp

    @event("SignedOut", topic=f"{_T}.SignedOut")
    def _sign_out(self, sign_in_id: int, timestamp: datetime) -> None:
        self._end([sign_in_id])

    @event("SignedOutRemotely", topic=f"{_T}.SignedOutRemotely")
    def _sign_out_remotely(
        self, sign_in_id: int, by_session_id: int, by_sign_in_id: int, timestamp: datetime
    ) -> None:
        self._end([sign_in_id])

    @event("SignedOutOfAll", topic=f"{_T}.SignedOutOfAll")
    def _sign_out_all(self, sign_in_ids: list[int], timestamp: datetime) -> None:
        self._end(sign_in_ids)

    @event("SignInExpired", topic=f"{_T}.SignInExpired")
    def _expire(self, sign_in_id: int, expired_at: datetime, timestamp: datetime) -> None:
        self._end([sign_in_id])

    def _end(self, sign_in_ids: list[int]) -> None:
        self.sign_ins = [s for s in self.sign_ins if s.id not in sign_in_ids]
        if self.active_sign_in_id in sign_in_ids:
            self.active_sign_in_id = None


# How each ending event ends a sign-in (what analytics and auditors call it).
END_REASONS = {
    "SignedOut": EndReason.SIGNED_OUT,
    "SignedOutOfAll": EndReason.SIGNED_OUT_ALL,
    "SignedOutRemotely": EndReason.SIGNED_OUT_REMOTELY,
    "SignInExpired": EndReason.EXPIRED,
}
