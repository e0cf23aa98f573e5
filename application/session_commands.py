"""Commands on a session that need no credentials: start, switch, sign out, choose context.

Each runs one action through the :class:`~application.unit_of_work.UnitOfWork` and returns
one typed outcome. How accounts enter a session is in :mod:`application.authentication`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from application.cookie_tokens import CookieTokens, Remembered
from application.errors import Unauthorized
from application.ports import Directory, IdGenerator, StaleGuard
from application.read_model import SessionDocument
from application.unit_of_work import Changed, CommandScope, UnitOfWork
from application.user_contexts import UserContexts
from domain.errors import InvalidSignInId, NotAMember
from domain.ids import parse_id
from domain.session import Session
from domain.values import OrganizationMembershipFact, WorkspaceMembershipFact


@dataclass(frozen=True)
class CommandResult:
    """A session after a command, and the cookie token to send if it changed."""

    document: SessionDocument
    new_token: str | None = None


class SessionCommands:
    """Start a session, switch between its sign-ins, end them, and choose their context."""

    def __init__(
        self,
        work: UnitOfWork,
        tokens: CookieTokens,
        contexts: UserContexts,
        directory: Directory,
        ids: IdGenerator,
    ) -> None:
        self._work = work
        self._tokens = tokens
        self._contexts = contexts
        self._directory = directory
        self._ids = ids

    @property
    def switches_at_once(self) -> bool:
        """Whether :meth:`switch_sign_in_at_once` can ever decide (the store appends at once)."""
        return self._work.app.appends_at_once is not None

    def start_session(self) -> CommandResult:
        """Start an anonymous session and issue its first cookie token."""

        def make(now: datetime) -> tuple[Session, Changed[str]]:
            session = Session.start(self._ids.next_id(), now)
            token, issued = self._tokens.issue(session.session_id, now)
            return session, Changed(token, [issued])

        done = self._work.start(make)
        return CommandResult(done.document, done.result)

    def note_activity(self, session_id: int) -> SessionDocument:
        """Record the expiries that are due and that the active sign-in is in use (reading a
        session is what "in use" means; other commands record their own times)."""
        resolution = self._work.policy.activity_resolution

        def action(session: Session, scope: CommandScope) -> Changed[None]:
            session.note_activity(scope.now, resolution)
            return Changed(None)

        return self._work.run(session_id, action).document

    def switch_sign_in(
        self, session_id: int, raw_sign_in_id: str | None, cookie: Remembered | None = None
    ) -> SessionDocument:
        """Make a live sign-in of this session the active one.

        With ``cookie`` (the caller's token as this process last found it valid, not read
        again), the switch commits only if that token is still at that version: checked by
        the append itself, in its round trip. Unauthorized if it is not (the caller then
        resolves the cookie again, the careful way)."""
        sign_in_id = parse_id(raw_sign_in_id)

        def action(session: Session, scope: CommandScope) -> Changed[None]:
            session.switch_sign_in(sign_in_id, scope.now)
            return Changed(None)

        if cookie is None:
            return self._work.run(session_id, action).document
        try:
            return self._work.run(session_id, action, [cookie.guard]).document
        except StaleGuard:
            raise Unauthorized from None

    async def switch_sign_in_at_once(
        self, session_id: int, raw_sign_in_id: str | None, cookie: Remembered
    ) -> SessionDocument | None:
        """:meth:`switch_sign_in` with a remembered cookie, on the event loop, in the common
        case (see :meth:`UnitOfWork.run_at_once`); None: run :meth:`switch_sign_in`."""
        sign_in_id = parse_id(raw_sign_in_id)
        if sign_in_id is None:
            return None

        def action(session: Session, scope: CommandScope) -> Changed[None]:
            session.switch_sign_in(sign_in_id, scope.now)
            return Changed(None)

        done = await self._work.run_at_once(session_id, action, [cookie.guard])
        return None if done is None else done.document

    def sign_out(
        self, session_id: int, raw_sign_in_id: str | None, old_token: str | None
    ) -> CommandResult:
        """End one sign-in (``raw_sign_in_id``) or, when it is None, every sign-in; the
        cookie token rotates when a sign-in ended."""
        sign_in_id = parse_id(raw_sign_in_id)
        if raw_sign_in_id is not None and sign_in_id is None:
            raise InvalidSignInId

        def action(session: Session, scope: CommandScope) -> Changed[str | None]:
            before = len(session.pending_events)
            if sign_in_id is None:
                session.sign_out_all(scope.now)
            else:
                session.sign_out(sign_in_id, scope.now)
            if len(session.pending_events) == before:
                return Changed(None)
            token, tokens = self._tokens.rotate(session, old_token, scope.now)
            return Changed(token, tokens)

        done = self._work.run(session_id, action)
        return CommandResult(done.document, done.result)

    def sign_out_remotely(
        self, session_id: int, sign_in_id: int, user_id: int, by_session_id: int, by_sign_in_id: int
    ) -> None:
        """End ``user_id``'s sign-in in another session, from the session and sign-in named."""

        def action(session: Session, scope: CommandScope) -> Changed[None]:
            session.sign_out_remotely(sign_in_id, user_id, by_session_id, by_sign_in_id, scope.now)
            return Changed(None)

        self._work.run(session_id, action)

    def switch_organization(self, session_id: int, raw_organization_id: str) -> SessionDocument:
        """Activate the active user's membership of an organization; empty clears it."""

        def action(session: Session, scope: CommandScope) -> Changed[None]:
            user_id = session.active_sign_in(scope.now).user_id
            membership: OrganizationMembershipFact | None = None
            if raw_organization_id != "":
                organization_id = parse_id(raw_organization_id)
                if organization_id is not None:
                    membership = self._directory.organization_membership_of(
                        user_id, organization_id
                    )
                if membership is None:
                    raise NotAMember
            session.activate_organization(membership, scope.now)
            return Changed(None, [self._contexts.remember(session, user_id, scope)])

        return self._work.run(session_id, action).document

    def switch_workspace(self, session_id: int, raw_workspace_id: str) -> SessionDocument:
        """Activate the active user's membership of a workspace and its parent; empty clears."""

        def action(session: Session, scope: CommandScope) -> Changed[None]:
            user_id = session.active_sign_in(scope.now).user_id
            membership: WorkspaceMembershipFact | None = None
            if raw_workspace_id != "":
                workspace_id = parse_id(raw_workspace_id)
                if workspace_id is not None:
                    membership = self._directory.workspace_membership_of(user_id, workspace_id)
                if membership is None:
                    raise NotAMember
            session.activate_workspace(membership, scope.now)
            return Changed(None, [self._contexts.remember(session, user_id, scope)])

        return self._work.run(session_id, action).document
