"""Queries on a session: its document, the claims of its short-lived token, its short form.

They answer from the read model (the projected sessions) once it has caught up with the
session's last recorded event (read-your-writes, also across processes). Reading a session
is what "in use" means: when expiries are due or the active sign-in's activity should be
noted, the query records that first (a command) and then answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from application.cookie_tokens import Remembered
from application.errors import Unauthorized
from application.policy import SessionPolicy
from application.ports import (
    Clock,
    Directory,
    OrganizationMembershipView,
    Role,
    SessionReadModel,
    TokenSigner,
    WorkspaceMembershipView,
)
from application.read_model import (
    Rendering,
    SessionDocument,
    SessionInfo,
    rendering_from_memory,
    rfc3339,
    session_document,
)
from application.session_commands import SessionCommands
from application.sessions import SessionsApp
from domain.errors import DomainError, NoActiveSignIn
from domain.ids import parse_id
from domain.session import Session
from domain.values import SignIn


@dataclass(frozen=True)
class ProjectedNow:
    """A projected session and the instant it was found current at."""

    state: Session
    now: datetime
    signing_kid: str | None = None


class SessionQueries:
    """A session as the API shows it, read from the projections."""

    def __init__(
        self,
        app: SessionsApp,
        read_model: SessionReadModel,
        commands: SessionCommands,
        *,
        directory: Directory,
        signer: TokenSigner,
        clock: Clock,
        policy: SessionPolicy,
    ) -> None:
        self._app = app
        self.read_model = read_model
        self._commands = commands
        self._directory = directory
        self._signer = signer
        self._clock = clock
        self._policy = policy

    def get_session(self, session_id: int, cookie: Remembered | None = None) -> SessionDocument:
        """The session now, from the read model; expiries that are due get recorded first.
        With ``cookie``, the remembered cookie is checked in the same read (Unauthorized if
        its token changed: resolve it in full then) before anything is written."""
        now = self._clock.now()
        state = self._projected(session_id, cookie)
        if state is None or self._needs_writing(state, now):
            return self._commands.note_activity(session_id)
        return session_document(state, self._directory, now)

    @property
    def reads_at_once(self) -> bool:
        """Whether :meth:`projected_at_once` and its siblings can ever answer."""
        return self.read_model.reads_at_once

    async def projected_at_once(self, cookie: Remembered) -> ProjectedNow | None:
        """The session a remembered cookie opens, read without blocking the event loop,
        when that is all :meth:`get_session` would do: the read model answers in one
        statement, the token is unchanged, the projection has reached the session's last
        event and nothing is due to be recorded. None otherwise: call :meth:`get_session`,
        which checks and writes what is needed."""
        return await self._at_once(cookie, signing_kid=False)

    async def switched_already_at_once(
        self, cookie: Remembered, raw_sign_in_id: str | None
    ) -> ProjectedNow | None:
        """For a switch to the sign-in that is active already: the session as
        :meth:`projected_at_once` reads it (at its last event, the token unchanged, nothing
        due to be recorded), when that sign-in is live and active there, so the switch would
        record nothing; None otherwise (the switch runs in a thread)."""
        sign_in_id = parse_id(raw_sign_in_id)
        if sign_in_id is None:
            return None
        projected = await self.projected_at_once(cookie)
        if projected is None or projected.state.active_sign_in_id != sign_in_id:
            return None
        try:
            projected.state.live_sign_in(sign_in_id, projected.now)
        except DomainError:
            return None
        return projected

    async def session_token_at_once(
        self, cookie: Remembered
    ) -> tuple[str, int, SessionInfo] | None:
        """:meth:`session_token` without blocking the event loop, when one statement (the
        session, the cookie's token and the active signing key) is all it takes: as for
        :meth:`projected_at_once`, and there is an active sign-in, it works in no
        organization (its memberships would be read) and the active key is loaded. None
        otherwise."""
        projected = await self._at_once(cookie, signing_kid=True)
        if projected is None or projected.signing_kid is None:
            return None
        state, now = projected.state, projected.now
        try:
            sign_in = state.active_sign_in(now)
        except NoActiveSignIn:
            return None  # refused in the thread, whose error envelope reads the session
        if sign_in.organization_membership_id or sign_in.workspace_membership_id:
            return None
        claims, expires = self._claims(state, sign_in, None, None, now)
        token = self._signer.sign_with(projected.signing_kid, claims)
        return None if token is None else (token, expires, _info(state))

    async def _at_once(self, cookie: Remembered, *, signing_kid: bool) -> ProjectedNow | None:
        read = await self.read_model.state_and_token_at_head_async(
            cookie.session_id, cookie.key, signing_kid=signing_kid
        )
        if read is None or read.token_version != cookie.version or read.at_head is None:
            return None
        written, state = read.at_head
        now = self._clock.now()
        if state is None or state.version < written or self._needs_writing(state, now):
            return None
        return ProjectedNow(state, now, read.signing_kid)

    def rendering_from_memory(self, projected: ProjectedNow) -> Rendering | None:
        """How :meth:`document` renders without a read, or None when it must read (see
        :func:`rendering_from_memory`)."""
        return rendering_from_memory(projected.state, self._directory, projected.now)

    def document(self, projected: ProjectedNow) -> SessionDocument:
        """The document of a session read by :meth:`projected_at_once`."""
        return session_document(projected.state, self._directory, projected.now)

    def session_token(
        self, session_id: int, cookie: Remembered | None = None
    ) -> tuple[str, int, SessionInfo]:
        """A short-lived signed token for the active sign-in, its expiry in epoch ms, and
        the short form of the session it was signed from (for the envelope); ``cookie`` as
        for :meth:`get_session`."""
        now = self._clock.now()
        state = self._projected(session_id, cookie) or self._app.read_session(session_id)
        if self._needs_writing(state, now):
            # Record due expiries (an idle sign-in gets no token) and note the activity:
            # an app that only asks for tokens is in use.
            self._commands.note_activity(session_id)
            state = self._projected(session_id) or self._app.read_session(session_id)
        sign_in = state.active_sign_in(now)
        directory = self._directory
        organizations = directory.organization_memberships(
            [sign_in.organization_membership_id] if sign_in.organization_membership_id else []
        )
        organization = organizations.get(sign_in.organization_membership_id or 0)
        workspaces = directory.workspace_memberships(
            [sign_in.workspace_membership_id] if sign_in.workspace_membership_id else []
        )
        workspace = workspaces.get(sign_in.workspace_membership_id or 0)
        claims, expires = self._claims(state, sign_in, organization, workspace, now)
        return self._signer.sign(claims), expires, _info(state)

    def _claims(
        self,
        state: Session,
        sign_in: SignIn,
        organization: OrganizationMembershipView | None,
        workspace: WorkspaceMembershipView | None,
        now: datetime,
    ) -> tuple[dict[str, object], int]:
        """A session token's claims for the active sign-in, and its expiry in epoch ms."""
        issued = int(now.timestamp())
        expires = issued + int(self._policy.token_lifetime.total_seconds())
        claims: dict[str, object] = {
            "iss": self._policy.token_issuer,
            "sub": str(sign_in.user_id),
            "sid": str(state.session_id),
            "sign_in_id": str(sign_in.id),
            "iat": issued,
            "nbf": issued,
            "exp": expires,
            "organization": str(organization.organization_id) if organization else None,
            "workspace": str(workspace.workspace_id) if workspace else None,
            "permissions": {
                "organization": _permissions(organization.roles if organization else ()),
                "workspace": _permissions(workspace.roles if workspace else ()),
            },
        }
        return claims, expires * 1000

    def session_info(self, session_id: int) -> SessionInfo:
        """The short form of a session, for envelopes; records nothing."""
        return _info(self._projected(session_id) or self._app.read_session(session_id))

    def _needs_writing(self, state: Session, now: datetime) -> bool:
        """True if expiries are due or the active sign-in's activity should be noted."""
        if state.due_expiries(now, self._policy.idle_timeout):
            return True
        active = next((s for s in state.sign_ins if s.id == state.active_sign_in_id), None)
        return (
            active is not None and now - active.last_active_at >= self._policy.activity_resolution
        )

    def _projected(self, session_id: int, cookie: Remembered | None = None) -> Session | None:
        """The session as the read model shows it, once the read model has caught up with
        the session's last recorded event (read-your-writes, also across processes)."""
        if cookie is None:
            found = self.read_model.state_at_head(session_id)
        else:
            found, token_version = self.read_model.state_and_token_at_head(session_id, cookie.key)
            if token_version != cookie.version or cookie.session_id != session_id:
                raise Unauthorized  # the token changed since it was remembered
        if found is None:
            return None
        written, state = found
        if state is None or state.version < written:
            # The projection has not reached a write that was just answered: apply it now
            # rather than wait for the worker.
            self.read_model.catch_up()
            state = self.read_model.session_state(session_id, written)
        return state


def _info(session: Session) -> SessionInfo:
    return SessionInfo(
        id=str(session.session_id),
        created_at=rfc3339(session.created_on),
        updated_at=rfc3339(session.modified_on),
    )


def _permissions(roles: Sequence[Role]) -> list[str]:
    """The union of the roles' permissions, in first-seen order."""
    return list(dict.fromkeys(p for role in roles for p in role.permissions))
