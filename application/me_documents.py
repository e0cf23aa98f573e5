"""Read-model DTOs of the ``/me`` routes: the active user's memberships and sign-ins.

Shapes follow Wacht's ``OrganizationMembership``, ``WorkspaceMembership`` and ``Signin``
schemas. The directory keeps no pictures, descriptions, metadata or creation times for
organizations, workspaces and memberships: those fields are empty or null, not invented.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from application.read_model import UserDoc


class _GroupDoc(BaseModel):
    """What organizations and workspaces share."""

    id: str
    name: str
    image_url: str = ""
    description: str = ""
    member_count: int
    public_metadata: dict[str, Any] = {}
    enable_ip_restriction: bool = False
    whitelisted_ips: list[str] = []
    created_at: str | None = None
    updated_at: str | None = None
    segments: list[str] = []


class OrganizationDoc(_GroupDoc):
    """An organization."""

    enforce_mfa: bool = False
    auto_assigned_workspace_id: str | None = None


class WorkspaceDoc(_GroupDoc):
    """A workspace of an organization."""

    enforce_2fa: bool = False


class _RoleDoc(BaseModel):
    """A role with its permissions."""

    id: str
    name: str
    permissions: list[str]
    created_at: str | None = None
    updated_at: str | None = None


class OrganizationRoleDoc(_RoleDoc):
    """A role of an organization."""

    organization_id: str


class WorkspaceRoleDoc(_RoleDoc):
    """A role of a workspace."""

    workspace_id: str


class OrganizationMembershipEntry(BaseModel):
    """One of the active user's organization memberships; ``id`` is what a sign-in's
    ``active_organization_membership_id`` holds."""

    id: str
    organization: OrganizationDoc
    user: UserDoc | None
    roles: list[OrganizationRoleDoc]
    public_metadata: dict[str, Any] = {}
    created_at: str | None = None
    updated_at: str | None = None


class WorkspaceMembershipEntry(BaseModel):
    """One of the active user's workspace memberships; ``id`` is what a sign-in's
    ``active_workspace_membership_id`` holds."""

    id: str
    workspace: WorkspaceDoc
    organization_id: str
    organization_membership_id: str
    user_id: str
    roles: list[WorkspaceRoleDoc]
    organization: OrganizationDoc
    public_metadata: dict[str, Any] = {}
    created_at: str | None = None
    updated_at: str | None = None


class UserSignInDoc(BaseModel):
    """A live sign-in of the active user, in this or another browser."""

    id: str
    user_id: str
    session_id: str
    created_at: str
    expires_at: str
    last_active_at: str
    user_agent: str
    ip_address: str
    current: bool  # the sign-in of the browser asking
