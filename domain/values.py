"""Value objects held in the Session aggregate's state and passed into its commands."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


def normalise_email(raw: str) -> str:
    """An email as the service compares and keeps it: trimmed and lower-cased."""
    return raw.strip().lower()


class SignInMethod(StrEnum):
    """How an account entered the session (values of the contract's SignInMethod)."""

    PLAIN_EMAIL = "plain_email"
    EMAIL_OTP = "email_otp"


class SignInStep(StrEnum):
    """The step an attempt waits for (CurrentSessionStep; SignupAttemptStep for sign-ups)."""

    VERIFY_PASSWORD = "verify_password"  # noqa: S105 - a step name, not a password
    VERIFY_EMAIL_OTP = "verify_email_otp"
    VERIFY_EMAIL = "verify_email"


# The step a new attempt waits for, by how it signs in.
FIRST_STEP = {
    SignInMethod.PLAIN_EMAIL: SignInStep.VERIFY_PASSWORD,
    SignInMethod.EMAIL_OTP: SignInStep.VERIFY_EMAIL_OTP,
}


class FailureReason(StrEnum):
    """Why a verification failed (recorded in SignInAttemptFailed)."""

    INVALID_CREDENTIALS = "invalid_credentials"
    INVALID_CODE = "invalid_code"
    CODE_EXPIRED = "code_expired"


class AttemptKind(StrEnum):
    """Whether an attempt adds an existing account (sign-in) or creates one (sign-up)."""

    SIGN_IN = "sign_in"
    SIGN_UP = "sign_up"


class EndReason(StrEnum):
    """How a sign-in stopped being live."""

    SIGNED_OUT = "signed_out"
    SIGNED_OUT_ALL = "signed_out_all"
    SIGNED_OUT_REMOTELY = "signed_out_remotely"  # from another browser of the same user
    EXPIRED = "expired"


@dataclass
class SignIn:
    """One account signed in to a session, with the context it last worked in."""

    id: int
    user_id: int
    method: str
    created_at: datetime
    updated_at: datetime
    expires_at: datetime
    last_active_at: datetime
    organization_membership_id: int | None = None
    workspace_membership_id: int | None = None

    def is_live(self, now: datetime) -> bool:
        """True until the sign-in's absolute lifetime runs out."""
        return now < self.expires_at


def sign_in_ends_at(
    expires_at: datetime, last_active_at: datetime, idle_timeout: timedelta | None
) -> datetime:
    """When a sign-in ends: at the end of its lifetime, or once unused for ``idle_timeout``."""
    if not idle_timeout:
        return expires_at
    return min(expires_at, last_active_at + idle_timeout)


@dataclass
class SignInAttempt:
    """An attempt to add an account to a session (or to create one), completed or not.

    ``code_digest`` is a keyed hash of the one-time code last sent, never the code.
    ``user_id`` is the account the attempt is for, when there is one; callers are never
    told, so an attempt for an unknown email looks like any other.
    """

    id: int
    method: str
    created_at: datetime
    updated_at: datetime
    expires_at: datetime
    current_step: str | None
    completed: bool = False
    failed: bool = False
    kind: str = AttemptKind.SIGN_IN
    user_id: int | None = None
    code_digest: str | None = None
    code_expires_at: datetime | None = None
    failures: int = 0

    def is_open(self, now: datetime) -> bool:
        """Neither completed, failed for good, nor past its lifetime."""
        return not self.completed and not self.failed and now < self.expires_at


@dataclass(frozen=True)
class CodeVerdict:
    """What checking a one-time code decided: accepted, or a failure already recorded."""

    attempt: SignInAttempt
    accepted: bool


@dataclass(frozen=True)
class OrganizationMembershipFact:
    """What the directory says about one organization membership."""

    id: int
    user_id: int
    organization_id: int


@dataclass(frozen=True)
class WorkspaceMembershipFact:
    """What the directory says about one workspace membership and its parent."""

    id: int
    workspace_id: int
    organization_membership: OrganizationMembershipFact

    @property
    def user_id(self) -> int:
        """The member: the user of the parent organization membership."""
        return self.organization_membership.user_id


@dataclass(frozen=True)
class ActiveContext:
    """An organization membership and workspace membership chosen together, either optional."""

    organization_membership_id: int | None = None
    workspace_membership_id: int | None = None
