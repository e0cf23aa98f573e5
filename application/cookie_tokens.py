"""Cookie tokens: random values whose keyed digest names a SessionToken aggregate.

The store keeps only the digest, so a leaked event log opens no session.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Repository
from eventsourcing.domain import Aggregate

from application.errors import Unauthorized
from application.ports import Digester
from domain.session import Session
from domain.tokens import SessionToken

TOKEN_BYTES = 32  # 256 bits; the contract asks for at least 128


class CookieTokens:
    """Issue, resolve and rotate the tokens that browsers present as session cookies."""

    def __init__(self, repository: Repository[UUID], digester: Digester) -> None:
        self._repository = repository
        self._digester = digester

    def _key(self, token: str) -> UUID:
        return UUID(bytes=self._digester.digest("session-token", token)[:16])

    def issue(self, session_id: int, now: datetime) -> tuple[str, SessionToken]:
        """A new token for the session, and the aggregate to save for it."""
        token = secrets.token_urlsafe(TOKEN_BYTES)
        return token, SessionToken.issue(self._key(token), session_id, now)

    def resolve(self, token: str | None) -> int:
        """The session id a cookie token opens, or Unauthorized for anything else."""
        if not token or len(token) > 256 or not token.isascii():
            raise Unauthorized
        try:
            aggregate: Aggregate = self._repository.get(self._key(token))
        except AggregateNotFoundError:
            raise Unauthorized from None
        if not isinstance(aggregate, SessionToken) or aggregate.revoked:
            raise Unauthorized
        return aggregate.session_id

    def rotate(
        self, session: Session, old_token: str | None, now: datetime
    ) -> tuple[str, list[Aggregate]]:
        """Issue a new token for the session and revoke the one the caller used; the new
        token, and the aggregates to save with the session."""
        token, issued = self.issue(session.session_id, now)
        changed: list[Aggregate] = [issued]
        if old_token:
            try:
                old: Aggregate | None = self._repository.get(self._key(old_token))
            except AggregateNotFoundError:
                old = None
            if isinstance(old, SessionToken) and old.session_id == session.session_id:
                old.revoke("accounts_changed", now)
                changed.append(old)
        return token, changed
