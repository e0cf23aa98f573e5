"""The SessionToken aggregate: which session a browser cookie opens, until it is revoked.

The aggregate's id is derived from a keyed digest of the cookie value, so the store holds no
token, only a digest, and a lookup is a single read by id.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from eventsourcing.domain import Aggregate, event

_T = "session-ledger:SessionToken"


class SessionToken(Aggregate):
    """A cookie token bound to one session; revoked when the session's accounts change."""

    TOPIC = _T

    class Created(Aggregate.Created):
        """Unused: the named creation event below is the one recorded."""

        TOPIC = f"{_T}.Created"

    @classmethod
    def issue(cls, token_key: UUID, session_id: int, now: datetime) -> SessionToken:
        """Bind the token whose digest maps to ``token_key`` to a session."""
        return cls(token_key=token_key, session_id=session_id, timestamp=now)

    @staticmethod
    def create_id(token_key: UUID) -> UUID:
        """The token's id is the key derived from its digest."""
        return token_key

    @event("Issued", topic=f"{_T}.Issued")
    def __init__(self, token_key: UUID, session_id: int, timestamp: datetime) -> None:
        self.session_id = session_id
        self.revoked = False

    def revoke(self, reason: str, now: datetime) -> None:
        """Stop the token from opening its session; revoking twice records nothing."""
        if not self.revoked:
            self._revoke(reason=reason, timestamp=now)

    @event("Revoked", topic=f"{_T}.Revoked")
    def _revoke(self, reason: str, timestamp: datetime) -> None:
        self.revoked = True
