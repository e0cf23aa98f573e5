"""The active user's view across sessions: memberships, sign-ins on every device, and
ending one of those sign-ins from here.

Everything starts from the caller's session as ``GET /session`` shows it (due expiries are
recorded first): without an active sign-in there is no "me" (``NoActiveSignIn``).
"""

from __future__ import annotations

from datetime import datetime

from application.errors import InvalidRequest
from application.me_documents import (
    OrganizationDoc,
    OrganizationMembershipEntry,
    OrganizationRoleDoc,
    UserSignInDoc,
    WorkspaceDoc,
    WorkspaceMembershipEntry,
    WorkspaceRoleDoc,
)
from application.policy import SessionPolicy
from application.ports import Clock, Directory, Group, UserSignIn, UserSignIns
from application.read_model import SignInDoc, rfc3339, user_doc
from application.session_commands import CommandResult, SessionCommands
from application.session_queries import SessionQueries
from domain.errors import InvalidSignInId, NoActiveSignIn
from domain.ids import parse_id
from domain.values import sign_in_ends_at


class MyAccount:
    """Queries and one command on behalf of the caller's active sign-in."""

    def __init__(
        self,
        queries: SessionQueries,
        commands: SessionCommands,
        sign_ins: UserSignIns,
        *,
        directory: Directory,
        clock: Clock,
        policy: SessionPolicy,
    ) -> None:
        self.queries = queries
        self.commands = commands
        self.devices = sign_ins
        self.directory = directory
        self.clock = clock
        self.policy = policy

    def _active(self, session_id: int) -> SignInDoc:
        active = self.queries.get_session(session_id).active_signin
        if active is None:
            raise NoActiveSignIn
        return active

    def organization_memberships(self, session_id: int) -> list[OrganizationMembershipEntry]:
        """The active user's organization memberships, with organization and roles."""
        user_id = int(self._active(session_id).user_id)
        directory = self.directory
        ids, _ = directory.user_membership_ids(user_id)
        memberships = directory.organization_memberships(ids)
        groups = directory.groups((m.organization_id for m in memberships.values()), [])
        user = user_doc(directory.user_profiles([user_id]).get(user_id))
        return [
            OrganizationMembershipEntry(
                id=str(m.id),
                organization=_organization(groups["organizations"][m.organization_id]),
                user=user,
                roles=[
                    OrganizationRoleDoc(
                        id=str(r.id),
                        organization_id=str(m.organization_id),
                        name=r.name,
                        permissions=list(r.permissions),
                    )
                    for r in m.roles
                ],
            )
            for m in (memberships[i] for i in ids if i in memberships)
            if m.organization_id in groups["organizations"]
        ]

    def workspace_memberships(
        self, session_id: int, raw_organization_id: str | None = None
    ) -> list[WorkspaceMembershipEntry]:
        """The active user's workspace memberships (of one organization, if given)."""
        only = None
        if raw_organization_id:
            only = parse_id(raw_organization_id)
            if only is None:
                raise InvalidRequest("The request is malformed: check org_id.")
        user_id = int(self._active(session_id).user_id)
        directory = self.directory
        _, ids = directory.user_membership_ids(user_id)
        memberships = directory.workspace_memberships(ids)
        parents = directory.organization_memberships(
            m.organization_membership_id for m in memberships.values()
        )
        groups = directory.groups(
            (p.organization_id for p in parents.values()),
            (m.workspace_id for m in memberships.values()),
        )
        entries = []
        for m in (memberships[i] for i in ids if i in memberships):
            parent = parents.get(m.organization_membership_id)
            workspace = groups["workspaces"].get(m.workspace_id)
            if parent is None or workspace is None or only not in (None, parent.organization_id):
                continue
            organization = groups["organizations"].get(parent.organization_id)
            if organization is None:
                continue
            entries.append(
                WorkspaceMembershipEntry(
                    id=str(m.id),
                    workspace=_workspace(workspace),
                    organization_id=str(parent.organization_id),
                    organization_membership_id=str(parent.id),
                    user_id=str(user_id),
                    roles=[
                        WorkspaceRoleDoc(
                            id=str(r.id),
                            workspace_id=str(m.workspace_id),
                            name=r.name,
                            permissions=list(r.permissions),
                        )
                        for r in m.roles
                    ],
                    organization=_organization(organization),
                )
            )
        return entries

    def sign_ins(self, session_id: int) -> list[UserSignInDoc]:
        """The active user's live sign-ins in every session, oldest first."""
        user_id = int(self._active(session_id).user_id)
        now = self.clock.now()
        return [
            UserSignInDoc(
                id=str(s.id),
                user_id=str(s.user_id),
                session_id=str(s.session_id),
                created_at=rfc3339(s.created_at),
                expires_at=rfc3339(s.expires_at),
                last_active_at=rfc3339(s.last_active_at),
                user_agent=s.user_agent,
                ip_address=s.client_address,
                current=s.session_id == session_id,
            )
            for s in self.devices.of_user(user_id)
            if self._live(s, now)
        ]

    def sign_out(
        self, session_id: int, raw_sign_in_id: str, old_token: str
    ) -> CommandResult | None:
        """End one of the active user's live sign-ins, in whichever session holds it.

        In this session it is an ordinary sign-out (the cookie rotates: the result says so);
        in another it is ``SignedOutRemotely`` there, naming this session and sign-in.
        Malformed, unknown, ended, expired or another user's ids: ``InvalidSignInId``.
        """
        sign_in_id = parse_id(raw_sign_in_id)
        if sign_in_id is None:
            raise InvalidSignInId
        active = self._active(session_id)
        user_id, by_sign_in_id = int(active.user_id), int(active.id)
        target = self.devices.get(sign_in_id)
        now = self.clock.now()
        if target is None or target.user_id != user_id or not self._live(target, now):
            raise InvalidSignInId
        if target.session_id == session_id:
            return self.commands.sign_out(session_id, raw_sign_in_id, old_token)
        self.commands.sign_out_remotely(
            target.session_id, sign_in_id, user_id, session_id, by_sign_in_id
        )
        return None

    def _live(self, sign_in: UserSignIn, now: datetime) -> bool:
        idle = self.policy.idle_timeout
        return now < sign_in_ends_at(sign_in.expires_at, sign_in.last_active_at, idle)


def _organization(group: Group) -> OrganizationDoc:
    return OrganizationDoc(id=str(group.id), name=group.name, member_count=group.member_count)


def _workspace(group: Group) -> WorkspaceDoc:
    return WorkspaceDoc(id=str(group.id), name=group.name, member_count=group.member_count)
