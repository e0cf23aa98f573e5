"""The organization and workspace each user chose last: where a new sign-in starts."""

from __future__ import annotations

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.domain import Aggregate

from application.locks import StripedLocks
from application.ports import Directory
from application.sessions import SessionsApp
from application.unit_of_work import CommandScope, StaleRead
from domain.session import Session
from domain.user_context import UserContext, user_context_uuid
from domain.values import ActiveContext


class UserContexts:
    """Reads and records users' last chosen context (the UserContext aggregates)."""

    def __init__(self, app: SessionsApp, directory: Directory) -> None:
        self._app = app
        self._directory = directory
        self._user_locks = StripedLocks()

    def _get(self, user_id: int) -> UserContext | None:
        try:
            context: Aggregate = self._app.repository.get(user_context_uuid(user_id))
        except AggregateNotFoundError:
            return None
        return context if isinstance(context, UserContext) else None

    def starting_context(self, user_id: int) -> ActiveContext:
        """The context a new sign-in of ``user_id`` starts with, if the directory still has it."""
        remembered = self._get(user_id)
        if remembered is None:
            return ActiveContext()
        wanted = remembered.context
        organizations = self._directory.organization_memberships(
            [wanted.organization_membership_id] if wanted.organization_membership_id else []
        )
        organization = organizations.get(wanted.organization_membership_id or 0)
        if organization is None or organization.user_id != user_id:
            return ActiveContext()
        workspaces = self._directory.workspace_memberships(
            [wanted.workspace_membership_id] if wanted.workspace_membership_id else []
        )
        workspace = workspaces.get(wanted.workspace_membership_id or 0)
        if workspace is None or workspace.organization_membership_id != organization.id:
            return ActiveContext(organization.id, None)
        return wanted

    def remember(self, session: Session, user_id: int, scope: CommandScope) -> UserContext:
        """The user's context after a successful switch, to save with the session.

        Recorded every time (even when the session itself did not change): every switch
        then writes this one aggregate, so two concurrent switches always conflict and
        retry instead of leaving the session and the user's context out of step. The
        user's lock is held until the command's run ends (saved or abandoned).
        """
        now = scope.now
        sign_in = session.active_sign_in(now)
        chosen = ActiveContext(sign_in.organization_membership_id, sign_in.workspace_membership_id)
        scope.hold(self._user_locks.get(user_id))
        context = self._get(user_id) or UserContext.open(user_id, now)
        # Read after the session, the context may already hold a switch of this session that
        # our session read missed; then the session has moved on: start again.
        loaded = session.version - len(session.pending_events)
        if self._app.load_session(session.session_id).version != loaded:
            raise StaleRead
        context.choose(chosen, now)
        return context
