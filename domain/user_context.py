"""The UserContext aggregate: the organization and workspace a user chose last, in any session.

A new sign-in starts with this context, so it is saved in the same transaction as the
session whose MembershipActivated event changed it.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

from domain.values import ActiveContext

_T = "session-ledger:UserContext"
_NAMESPACE = UUID("6f6b1c1e-4d0a-4c59-9a53-2f3c7f0b8e21")


def user_context_uuid(user_id: int) -> UUID:
    """The event store id of a user's context aggregate."""
    return uuid5(_NAMESPACE, f"user-context/{user_id}")


class UserContext(Aggregate):
    """The memberships a user activated last."""

    TOPIC = _T

    class Created(Aggregate.Created):
        """Unused: the named creation event below is the one recorded."""

        TOPIC = f"{_T}.Created"

    @classmethod
    def open(cls, user_id: int, now: datetime) -> UserContext:
        """Start tracking a user's context (initially none)."""
        return cls(user_id=user_id, timestamp=now)

    @staticmethod
    def create_id(user_id: int) -> UUID:
        """The event store id of a user's context aggregate."""
        return user_context_uuid(user_id)

    @event("Opened", topic=f"{_T}.Opened")
    def __init__(self, user_id: int, timestamp: datetime) -> None:
        self.user_id = user_id
        self.organization_membership_id: int | None = None
        self.workspace_membership_id: int | None = None

    @property
    def context(self) -> ActiveContext:
        """The memberships chosen last."""
        return ActiveContext(self.organization_membership_id, self.workspace_membership_id)

    def choose(self, context: ActiveContext, now: datetime) -> None:
        """Remember a context just activated in some session (recorded even if unchanged, so
        the user's context and that session are always saved, and version-checked, together)."""
        self._choose(
            organization_membership_id=context.organization_membership_id,
            workspace_membership_id=context.workspace_membership_id,
            timestamp=now,
        )

    @event("ContextChosen", topic=f"{_T}.ContextChosen")
    def _choose(
        self,
        organization_membership_id: int | None,
        workspace_membership_id: int | None,
        timestamp: datetime,
    ) -> None:
        self.organization_membership_id = organization_membership_id
        self.workspace_membership_id = workspace_membership_id
