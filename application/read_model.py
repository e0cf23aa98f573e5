"""The Session document of the wire contract, and how to build it from state and directory.

These are read-model DTOs: plain pydantic models with ids as decimal strings and times in
RFC 3339 UTC with a ``Z``, ready for the envelope. Nothing secret is ever a field here.
"""

from __future__ import annotations

import functools
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import BaseModel

from application.ports import (
    Directory,
    OrganizationMembershipView,
    Role,
    UserProfile,
    WorkspaceMembershipView,
)
from domain.session import Session
from domain.values import AttemptKind, SignIn, SignInAttempt


@functools.lru_cache(maxsize=16_384)
def rfc3339(moment: datetime) -> str:
    """A UTC timestamp with millisecond precision and a ``Z`` (remembered: a session's
    timestamps repeat in every answer that shows it)."""
    # isoformat is C; strftime and an f-string took most of rendering's time in profiles.
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


class RoleDoc(BaseModel):
    """A role with its permissions."""

    id: str
    name: str
    permissions: list[str]


class OrganizationMembershipDoc(BaseModel):
    """The active organization membership of a sign-in."""

    id: str
    organization_id: str
    roles: list[RoleDoc]


class WorkspaceMembershipDoc(BaseModel):
    """The active workspace membership of a sign-in."""

    id: str
    workspace_id: str
    organization_membership_id: str
    roles: list[RoleDoc]


class EmailAddressDoc(BaseModel):
    """A user's primary email address (the directory holds one email per user)."""

    email: str
    is_primary: bool = True


class UserDoc(BaseModel):
    """Public profile data of a signed-in user, with the fields Wacht's SDK components read.

    The directory has no usernames, pictures, phone numbers or passkeys: those fields say so
    (null, empty, false) rather than being left out, so the components render initials.
    """

    id: str
    first_name: str
    last_name: str
    username: str | None = None
    has_profile_picture: bool = False
    profile_picture_url: str = ""
    has_passkeys: bool = False
    primary_phone_number: None = None
    primary_email_address: EmailAddressDoc


class SignInDoc(BaseModel):
    """A live sign-in."""

    id: str
    user_id: str
    session_id: str
    created_at: str
    updated_at: str
    expires_at: str
    last_active_at: str
    active_organization_membership_id: str | None
    active_workspace_membership_id: str | None
    active_organization_membership: OrganizationMembershipDoc | None
    active_workspace_membership: WorkspaceMembershipDoc | None
    user: UserDoc | None


class SignInAttemptDoc(BaseModel):
    """A sign-in attempt of this session."""

    id: str
    created_at: str
    updated_at: str
    method: str
    completed: bool
    current_step: str | None
    expires_at: str


class SignUpAttemptDoc(BaseModel):
    """A sign-up attempt of this session (never with a password or any profile data)."""

    id: str
    created_at: str
    updated_at: str
    expires_at: str
    completed: bool
    current_step: str | None
    remaining_steps: list[str]


class SessionInfo(BaseModel):
    """The caller's session in every envelope."""

    id: str
    created_at: str
    updated_at: str


class SessionDocument(BaseModel):
    """The contract's Session object."""

    id: str
    created_at: str
    updated_at: str
    signin_attempts: list[SignInAttemptDoc]
    signins: list[SignInDoc]
    signup_attempts: list[SignUpAttemptDoc]
    active_signin_id: str | None
    active_signin: SignInDoc | None

    def info(self) -> SessionInfo:
        """The short form for the envelope."""
        return SessionInfo(id=self.id, created_at=self.created_at, updated_at=self.updated_at)


def roles_doc(roles: Sequence[Role]) -> list[RoleDoc]:
    """Roles with their permissions, in their order."""
    return [RoleDoc(id=str(r.id), name=r.name, permissions=list(r.permissions)) for r in roles]


def user_doc(profile: UserProfile | None) -> UserDoc | None:
    """The public profile of a user, or None."""
    if profile is None:
        return None
    return UserDoc(
        id=str(profile.id),
        first_name=profile.first_name,
        last_name=profile.last_name,
        primary_email_address=EmailAddressDoc(email=profile.email),
    )


def _sign_in_doc(
    sign_in: SignIn,
    session_id: int,
    organizations: dict[int, OrganizationMembershipView],
    workspaces: dict[int, WorkspaceMembershipView],
    users: dict[int, UserProfile],
) -> SignInDoc:
    org = organizations.get(sign_in.organization_membership_id or 0)
    if org is not None and org.user_id != sign_in.user_id:
        org = None
    ws = workspaces.get(sign_in.workspace_membership_id or 0)
    if ws is None or org is None or ws.organization_membership_id != org.id:
        ws = None
    return SignInDoc(
        id=str(sign_in.id),
        user_id=str(sign_in.user_id),
        session_id=str(session_id),
        created_at=rfc3339(sign_in.created_at),
        updated_at=rfc3339(sign_in.updated_at),
        expires_at=rfc3339(sign_in.expires_at),
        last_active_at=rfc3339(sign_in.last_active_at),
        active_organization_membership_id=str(org.id) if org else None,
        active_workspace_membership_id=str(ws.id) if ws else None,
        active_organization_membership=(
            OrganizationMembershipDoc(
                id=str(org.id), organization_id=str(org.organization_id), roles=roles_doc(org.roles)
            )
            if org
            else None
        ),
        active_workspace_membership=(
            WorkspaceMembershipDoc(
                id=str(ws.id),
                workspace_id=str(ws.workspace_id),
                organization_membership_id=str(ws.organization_membership_id),
                roles=roles_doc(ws.roles),
            )
            if ws
            else None
        ),
        user=user_doc(users.get(sign_in.user_id)),
    )


def _attempt_doc(attempt: SignInAttempt) -> SignInAttemptDoc:
    return SignInAttemptDoc(
        id=str(attempt.id),
        created_at=rfc3339(attempt.created_at),
        updated_at=rfc3339(attempt.updated_at),
        method=attempt.method,
        completed=attempt.completed,
        current_step=attempt.current_step,
        expires_at=rfc3339(attempt.expires_at),
    )


def _sign_up_doc(attempt: SignInAttempt) -> SignUpAttemptDoc:
    return SignUpAttemptDoc(
        id=str(attempt.id),
        created_at=rfc3339(attempt.created_at),
        updated_at=rfc3339(attempt.updated_at),
        expires_at=rfc3339(attempt.expires_at),
        completed=attempt.completed,
        current_step=attempt.current_step,
        remaining_steps=[attempt.current_step] if attempt.current_step else [],
    )


@dataclass(frozen=True)
class Rendering:
    """What a session's document is rendered from when it needs no read, and until when
    that stays so: two renderings with equal keys give equal documents before ``until``."""

    session_id: int
    key: Hashable
    until: datetime


def rendering_from_memory(
    session: Session, directory: Directory, now: datetime
) -> Rendering | None:
    """How :func:`session_document` would render ``session`` at ``now`` without a read, or
    None when it must read: when a live sign-in has an active organization or workspace
    (their memberships and roles are read each time) or a user's profile is not in memory.

    The key is everything the document depends on: the session's version and the users'
    profiles; ``now`` only decides which sign-ins and attempts are shown, which changes at
    the first of their ends after ``now``, the ``until``."""
    live = session.live_sign_ins(now)
    if any(s.organization_membership_id or s.workspace_membership_id for s in live):
        return None
    profiles = directory.profiles_in_memory(s.user_id for s in live)
    if profiles is None:
        return None
    ends = [s.expires_at for s in live]
    ends += [a.expires_at for a in session.attempts if a.expires_at > now]
    key = (session.version, tuple(profiles.values()))
    return Rendering(session.session_id, key, min(ends, default=datetime.max.replace(tzinfo=UTC)))


def session_document(session: Session, directory: Directory, now: datetime) -> SessionDocument:
    """Render a session as the contract's Session object, joined with the directory."""
    live = session.live_sign_ins(now)
    organizations = directory.organization_memberships(
        s.organization_membership_id for s in live if s.organization_membership_id
    )
    workspaces = directory.workspace_memberships(
        s.workspace_membership_id for s in live if s.workspace_membership_id
    )
    users = directory.user_profiles(s.user_id for s in live)
    shown = [a for a in session.attempts if not a.failed and a.expires_at > now]
    sign_ins = [_sign_in_doc(s, session.session_id, organizations, workspaces, users) for s in live]
    active = next((d for d in sign_ins if d.id == str(session.active_sign_in_id)), None)
    return SessionDocument(
        id=str(session.session_id),
        created_at=rfc3339(session.created_on),
        updated_at=rfc3339(session.modified_on),
        signin_attempts=[_attempt_doc(a) for a in shown if a.kind == AttemptKind.SIGN_IN],
        signins=sign_ins,
        signup_attempts=[_sign_up_doc(a) for a in shown if a.kind == AttemptKind.SIGN_UP],
        active_signin_id=active.id if active else None,
        active_signin=active,
    )
