"""The Session aggregate: the accounts signed in to one browser and which one is active.

Here are its commands (the decisions); its state, the checks the commands make and how each
event changes the state are in :mod:`domain.session_state`; its events in :mod:`domain.events`.

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

from domain import events
from domain.errors import InvalidAttempt, InvalidSignInId, NotAMember
from domain.events import END_REASONS
from domain.ids import aggregate_uuid
from domain.session_state import SessionState
from domain.values import (
    FIRST_STEP,
    ActiveContext,
    AttemptKind,
    CodeVerdict,
    FailureReason,
    OrganizationMembershipFact,
    SignIn,
    SignInAttempt,
    SignInMethod,
    SignInStep,
    WorkspaceMembershipFact,
)

__all__ = ["END_REASONS", "Session"]

# Wrong or stale codes an attempt survives; the fifth ends it.
MAX_CODE_FAILURES = 5

_T = events.AGGREGATE_TOPIC


class Session(Aggregate, SessionState):
    """A browser session holding up to a configured number of live sign-ins."""

    TOPIC = _T

    class Created(Aggregate.Created):
        """Unused: ``Started`` is the creation event recorded."""

        TOPIC = f"{_T}.Created"

    # The events (domain/events.py); the library subclasses each for its @event method.
    Started = events.Started
    SignInAttempted = events.SignInAttempted
    SignUpAttempted = events.SignUpAttempted
    VerificationPrepared = events.VerificationPrepared
    SignInAttemptFailed = events.SignInAttemptFailed
    SignUpCompleted = events.SignUpCompleted
    SignInCompleted = events.SignInCompleted
    ActiveSignInSwitched = events.ActiveSignInSwitched
    MembershipActivated = events.MembershipActivated
    SignInActivityNoted = events.SignInActivityNoted
    SignedOut = events.SignedOut
    SignedOutRemotely = events.SignedOutRemotely
    SignedOutOfAll = events.SignedOutOfAll
    SignInExpired = events.SignInExpired

    @classmethod
    def start(cls, session_id: int, now: datetime) -> Session:
        """Start a new, anonymous session."""
        return cls(session_id=session_id, timestamp=now)

    @staticmethod
    def create_id(session_id: int) -> UUID:
        """The event store id of the session with that wire id."""
        return aggregate_uuid(session_id)

    @event(Started)
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

    # Commands ---------------------------------------------------------------------------

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

    # Events, each bound to how it changes the state (domain/session_state.py) ---------

    _attempt = event(SignInAttempted)(SessionState._attempt)
    _attempt_sign_up = event(SignUpAttempted)(SessionState._attempt_sign_up)
    _prepare = event(VerificationPrepared)(SessionState._prepare)
    _complete_sign_up = event(SignUpCompleted)(SessionState._complete_sign_up)
    _fail_attempt = event(SignInAttemptFailed)(SessionState._fail_attempt)
    _complete = event(SignInCompleted)(SessionState._complete)
    _switch = event(ActiveSignInSwitched)(SessionState._switch)
    _activate = event(MembershipActivated)(SessionState._activate)
    _note_activity = event(SignInActivityNoted)(SessionState._note_activity)
    _sign_out = event(SignedOut)(SessionState._sign_out)
    _sign_out_remotely = event(SignedOutRemotely)(SessionState._sign_out_remotely)
    _sign_out_all = event(SignedOutOfAll)(SessionState._sign_out_all)
    _expire = event(SignInExpired)(SessionState._expire)
