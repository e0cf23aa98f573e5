"""The Session aggregate: the accounts signed in to one browser and which one is active.

Here are its commands on live sign-ins (the decisions); those of its sign-in and sign-up
attempts are in :mod:`domain.session_attempts`; its state, the checks the commands make and
how each event changes the state are in :mod:`domain.session_state`; its events in
:mod:`domain.events`.

Commands check first and raise before anything changes; the private ``@event`` methods only
assign, so that replaying the stored events rebuilds exactly the state the commands built.
Times come in from the caller (an injected clock), never from the system clock here.
"""

from __future__ import annotations

import copy
from datetime import datetime, timedelta
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain import events
from domain.errors import InvalidSignInId, NotAMember
from domain.ids import aggregate_uuid
from domain.session_attempts import SignInAttempts
from domain.session_state import SessionState
from domain.values import (
    ActiveContext,
    OrganizationMembershipFact,
    SignIn,
    SignInAttempt,
    WorkspaceMembershipFact,
)

_T = events.AGGREGATE_TOPIC


class Session(Aggregate, SignInAttempts):
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
