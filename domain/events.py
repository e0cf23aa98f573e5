"""What a Session's history records: one class per event, its fields typed.

Each class keeps the topic its events were first stored under, so moving or renaming a class
never orphans them (``SignInActivityNoted`` was once the class ``SignInActive`` and is still
stored under that topic). Some fields are for analytics and auditors only: no state is
folded from them, which is why they are written down here rather than left to the
signatures of the aggregate's private methods.

Values typed as enums are stored as their strings and read back as plain strings; the enums
are ``StrEnum`` so both compare equal.
"""

from __future__ import annotations

from datetime import datetime

from eventsourcing.domain import Aggregate

from domain.values import EndReason, FailureReason, SignInMethod, SignInStep

AGGREGATE_TOPIC = "session-ledger:Session"
_T = AGGREGATE_TOPIC


class Started(Aggregate.Created):
    """A new, anonymous session began."""

    TOPIC = f"{_T}.Started"
    session_id: int


class SignInAttempted(Aggregate.Event):
    """Someone started to add an account by password or emailed code (never the secret)."""

    TOPIC = f"{_T}.SignInAttempted"
    attempt_id: int
    method: SignInMethod
    current_step: SignInStep | None
    expires_at: datetime
    user_id: int | None  # None for an email that names no account
    identifier_digest: str  # a keyed hash of the email, for analytics of repeated tries


class SignUpAttempted(Aggregate.Event):
    """Someone started to create an account (its details wait outside the log)."""

    TOPIC = f"{_T}.SignUpAttempted"
    attempt_id: int
    user_id: int  # the id the account will have
    identifier_digest: str
    expires_at: datetime


class VerificationPrepared(Aggregate.Event):
    """A one-time code was sent for an attempt; any earlier code stops working."""

    TOPIC = f"{_T}.VerificationPrepared"
    attempt_id: int
    code_digest: str  # a keyed hash of the code, never the code
    code_expires_at: datetime


class SignInAttemptFailed(Aggregate.Event):
    """A password or code was wrong (or the code stale); a terminal failure ends the attempt."""

    TOPIC = f"{_T}.SignInAttemptFailed"
    attempt_id: int
    reason: FailureReason
    terminal: bool


class SignUpCompleted(Aggregate.Event):
    """A verified sign-up created its account."""

    TOPIC = f"{_T}.SignUpCompleted"
    attempt_id: int
    user_id: int


class SignInCompleted(Aggregate.Event):
    """An attempt succeeded: the account was added to the session and made active."""

    TOPIC = f"{_T}.SignInCompleted"
    attempt_id: int
    sign_in_id: int
    user_id: int
    method: SignInMethod
    expires_at: datetime
    organization_membership_id: int | None  # the context the sign-in starts in
    workspace_membership_id: int | None


class ActiveSignInSwitched(Aggregate.Event):
    """Another live sign-in became the active one."""

    TOPIC = f"{_T}.ActiveSignInSwitched"
    from_sign_in_id: int | None  # for analytics: which account the browser switched away from
    sign_in_id: int


class MembershipActivated(Aggregate.Event):
    """The active sign-in chose an organization and workspace membership (None clears)."""

    TOPIC = f"{_T}.MembershipActivated"
    sign_in_id: int
    user_id: int
    organization_membership_id: int | None
    workspace_membership_id: int | None


class SignInActivityNoted(Aggregate.Event):
    """The active sign-in was in use (noted at most once per activity resolution)."""

    TOPIC = f"{_T}.SignInActive"  # the topic of the class's first name
    sign_in_id: int


class SignedOut(Aggregate.Event):
    """One sign-in was ended in this browser."""

    TOPIC = f"{_T}.SignedOut"
    sign_in_id: int


class SignedOutRemotely(Aggregate.Event):
    """A sign-in was ended from another browser where the same user is active."""

    TOPIC = f"{_T}.SignedOutRemotely"
    sign_in_id: int
    by_session_id: int
    by_sign_in_id: int


class SignedOutOfAll(Aggregate.Event):
    """Every live sign-in of the session was ended at once."""

    TOPIC = f"{_T}.SignedOutOfAll"
    sign_in_ids: list[int]


class SignInExpired(Aggregate.Event):
    """A sign-in passed its lifetime or idle timeout (``expired_at``: when it ran out)."""

    TOPIC = f"{_T}.SignInExpired"
    sign_in_id: int
    expired_at: datetime


# How each ending event ends a sign-in (what analytics and auditors call it), by event name.
END_REASONS = {
    SignedOut.__name__: EndReason.SIGNED_OUT,
    SignedOutOfAll.__name__: EndReason.SIGNED_OUT_ALL,
    SignedOutRemotely.__name__: EndReason.SIGNED_OUT_REMOTELY,
    SignInExpired.__name__: EndReason.EXPIRED,
}
