"""A plain model of sessions for the stateful property test, built from the demo directory.

It knows the contract's rules and the demo directory's memberships (read from the JSON file,
not from the service), and renders the Session document the service should return.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.helpers import DEMO_DIRECTORY

_DEMO: dict[str, Any] = json.loads(DEMO_DIRECTORY.read_text())
USERS: dict[str, dict[str, Any]] = {u["id"]: u for u in _DEMO["users"]}
_ROLES: dict[str, dict[str, Any]] = {
    role["id"]: role
    for org in _DEMO["organizations"]
    for role in [*org["roles"], *(r for ws in org["workspaces"] for r in ws["roles"])]
}
ORG_MEMBERSHIPS: dict[str, dict[str, Any]] = {m["id"]: m for m in _DEMO["organization_memberships"]}
WS_MEMBERSHIPS: dict[str, dict[str, Any]] = {m["id"]: m for m in _DEMO["workspace_memberships"]}

ATTEMPT_LIFETIME = timedelta(minutes=30)
LIFETIME = timedelta(hours=1)
IDLE_TIMEOUT = timedelta(minutes=45)  # shorter than the lifetime, so both can end a sign-in
ACTIVITY_RESOLUTION = timedelta(minutes=15)

Context = tuple[str | None, str | None]  # (organization membership id, workspace membership id)
NO_CONTEXT: Context = (None, None)


def organization_context(user_id: str, organization_id: str) -> Context | None:
    """The context after switching to an organization, or None if the user is no member."""
    for membership in ORG_MEMBERSHIPS.values():
        if (membership["user_id"], membership["organization_id"]) == (user_id, organization_id):
            return membership["id"], None
    return None


def workspace_context(user_id: str, workspace_id: str) -> Context | None:
    """The context after switching to a workspace, or None if the user is no member."""
    for membership in WS_MEMBERSHIPS.values():
        parent = ORG_MEMBERSHIPS[membership["organization_membership_id"]]
        if (parent["user_id"], membership["workspace_id"]) == (user_id, workspace_id):
            return parent["id"], membership["id"]
    return None


def context_belongs_to(context: Context, user_id: str) -> bool:
    """True if the workspace membership is under the organization one, both the user's."""
    organization, workspace = context
    if organization is None:
        return workspace is None
    if ORG_MEMBERSHIPS[organization]["user_id"] != user_id:
        return False
    return (
        workspace is None or WS_MEMBERSHIPS[workspace]["organization_membership_id"] == organization
    )


def stamp(moment: datetime) -> str:
    """RFC 3339 in UTC with milliseconds and a Z."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class ModelSignIn:
    """A sign-in as the model expects it."""

    id: str
    user_id: str
    created_at: datetime
    expires_at: datetime
    context: Context
    updated_at: datetime = field(init=False)
    last_active_at: datetime = field(init=False)

    def __post_init__(self) -> None:
        self.updated_at = self.last_active_at = self.created_at


@dataclass
class ModelAttempt:
    """A completed sign-in attempt (failed ones never show)."""

    id: str
    created_at: datetime
    expires_at: datetime


@dataclass
class ModelSession:
    """A session as the model expects it."""

    id: str
    created_at: datetime
    token: str
    updated_at: datetime = field(init=False)
    sign_ins: list[ModelSignIn] = field(default_factory=list)
    attempts: list[ModelAttempt] = field(default_factory=list)
    active: str | None = None
    ended: list[str] = field(default_factory=list)  # signed-out or expired sign-in ids
    revoked: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.updated_at = self.created_at

    def live(self, now: datetime) -> list[ModelSignIn]:
        """Sign-ins still within their lifetime and not ended."""
        return [s for s in self.sign_ins if now < s.expires_at]

    def due(self, now: datetime) -> list[str]:
        """Sign-ins past their lifetime, or idle for longer than the idle timeout."""
        return [
            s.id for s in self.sign_ins if now >= min(s.expires_at, s.last_active_at + IDLE_TIMEOUT)
        ]

    def notice_expiries(self, now: datetime) -> bool:
        """What every command does first: record (and drop) the sign-ins that are due."""
        expired = self.due(now)
        if expired:
            self.end(expired, now)
        return bool(expired)

    def note_activity(self, now: datetime) -> bool:
        """What reading the session does: the active sign-in is in use, once per resolution."""
        active = self.active_sign_in(now)
        if active is None or now - active.last_active_at < ACTIVITY_RESOLUTION:
            return False
        active.last_active_at = self.updated_at = now
        return True

    def end(self, ids: list[str], now: datetime) -> None:
        """Sign-ins stop being live; the active one only if it is among them."""
        self.sign_ins = [s for s in self.sign_ins if s.id not in ids]
        self.ended.extend(ids)
        if self.active in ids:
            self.active = None
        self.updated_at = now

    def active_sign_in(self, now: datetime) -> ModelSignIn | None:
        """The live active sign-in, if any."""
        return next((s for s in self.live(now) if s.id == self.active), None)

    def rotate(self, token: str | None) -> None:
        """A new cookie token replaces the current one."""
        assert token is not None
        assert token != self.token
        self.revoked.append(self.token)
        self.token = token

    def state(self, now: datetime) -> dict[str, Any]:
        """What the stored state must hold, expiries not yet noticed included."""
        return {
            "session_id": int(self.id),
            "created_on": self.created_at,
            "modified_on": self.updated_at,
            "active_sign_in_id": int(self.active) if self.active else None,
            "sign_ins": [
                (
                    int(s.id),
                    int(s.user_id),
                    s.created_at,
                    s.updated_at,
                    s.expires_at,
                    s.last_active_at,
                    *(int(i) if i else None for i in s.context),
                )
                for s in self.sign_ins
            ],
            "attempts": [
                (int(a.id), a.created_at, a.expires_at) for a in self.attempts if a.expires_at > now
            ],
        }

    def document(self, now: datetime) -> dict[str, Any]:
        """The Session object the service should return at ``now``."""
        sign_ins = [_sign_in_doc(s, self.id) for s in self.live(now)]
        active = next((d for d in sign_ins if d["id"] == self.active), None)
        return {
            "id": self.id,
            "created_at": stamp(self.created_at),
            "updated_at": stamp(self.updated_at),
            "signin_attempts": [
                {
                    "id": a.id,
                    "created_at": stamp(a.created_at),
                    "updated_at": stamp(a.created_at),
                    "method": "plain_email",
                    "completed": True,
                    "current_step": None,
                    "expires_at": stamp(a.expires_at),
                }
                for a in self.attempts
                if a.expires_at > now
            ],
            "signins": sign_ins,
            "signup_attempts": [],
            "active_signin_id": active["id"] if active else None,
            "active_signin": active,
        }


def _roles(role_ids: list[str]) -> list[dict[str, Any]]:
    return [
        {"id": r, "name": _ROLES[r]["name"], "permissions": _ROLES[r]["permissions"]}
        for r in role_ids
    ]


def _sign_in_doc(sign_in: ModelSignIn, session_id: str) -> dict[str, Any]:
    organization_id, workspace_id = sign_in.context
    organization = ORG_MEMBERSHIPS[organization_id] if organization_id else None
    workspace = WS_MEMBERSHIPS[workspace_id] if workspace_id else None
    user = USERS[sign_in.user_id]
    return {
        "id": sign_in.id,
        "user_id": sign_in.user_id,
        "session_id": session_id,
        "created_at": stamp(sign_in.created_at),
        "updated_at": stamp(sign_in.updated_at),
        "expires_at": stamp(sign_in.expires_at),
        "last_active_at": stamp(sign_in.last_active_at),
        "active_organization_membership_id": organization_id,
        "active_workspace_membership_id": workspace_id,
        "active_organization_membership": organization
        and {
            "id": organization["id"],
            "organization_id": organization["organization_id"],
            "roles": _roles(organization["role_ids"]),
        },
        "active_workspace_membership": workspace
        and {
            "id": workspace["id"],
            "workspace_id": workspace["workspace_id"],
            "organization_membership_id": workspace["organization_membership_id"],
            "roles": _roles(workspace["role_ids"]),
        },
        "user": {
            "id": user["id"],
            "first_name": user["first_name"],
            "last_name": user["last_name"],
            "username": None,
            "has_profile_picture": False,
            "profile_picture_url": "",
            "has_passkeys": False,
            "primary_phone_number": None,
            "primary_email_address": {"email": user["email"], "is_primary": True},
        },
    }
