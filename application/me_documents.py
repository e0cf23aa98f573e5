"""Read-model DTOs of the ``/me`` routes: the active user's memberships and sign-ins.

Shapes follow Wacht's ``OrganizationMembership``, ``WorkspaceMembership`` and ``Signin``
schemas. The directory keeps no pictures, descriptions, metadata or creation times for
organizations, workspaces and memberships: those fields are empty or null, not invented.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from application.read_model import UserDoc


class OrganizationDoc(BaseModel):
    """An organization."""

    id: str
    name: str
    image_url: str = ""
    description: str = ""
    member_count: int
    public_metadata: dict[str, Any] = {}
    enforce_mfa: bool = False
    enable_ip_restriction: bool = False
    whitelisted_ips: list[str] = []
    auto_assigned_workspace_id: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    segments: list[str] = []


class WorkspaceDoc(BaseModel):
    """A workspace of an organization."""

    id: str
    name: str
    image_url: str = ""
    description: str = ""
    member_count: int
    public_metadata: dict[str, Any] = {}
    enforce_2fa: bool = False
    enable_ip_restriction: bool = False
    whitelisted_ips: list[str] = []
    created_at: str | None = None
    updated_at: str | None = None
    segments: list[str] = []


class OrganizationRoleDoc(BaseModel):
    """A role of an organization, with its permissions."""

    id: str
    organization_id: str
    name: str
    permissions: list[str]
    created_at: str | None = None
    updated_at: str | None = None


class WorkspaceRoleDoc(BaseModel):
    """A role of a workspace, with its permissions."""

    id: str
    workspace_id: str
    name: str
    permissions: list[str]
    created_at: str | None = None
    updated_at: str | None = None


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
