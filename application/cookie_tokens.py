"""Cookie tokens: random values whose keyed digest names a SessionToken aggregate.

The store keeps only the digest, so a leaked event log opens no session.

Every request resolves its cookie, so a token found valid is remembered with the version it
had; the next time only the version of its last event is read (one statement, or a column
of the statement that reads the session: :meth:`CookieTokens.remembered`) and, if no event
came since (a revocation is an event), the remembered session stands. Anything else loads
the aggregate again. A revocation is thus refused at once, by every process.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, LRUCache, Repository
from eventsourcing.domain import Aggregate

from application.errors import Unauthorized
from application.ports import AggregateHeads, Digester, Guard
from domain.session import Session
from domain.tokens import SessionToken

TOKEN_BYTES = 32  # 256 bits; the contract asks for at least 128


@dataclass(frozen=True)
class Remembered:
    """A cookie token this process found valid: its session, its aggregate's id, and the
    version the aggregate had then. It still holds while that version is the last."""

    session_id: int
    key: UUID
    version: int

    @property
    def guard(self) -> Guard:
        """For a command authorised by this cookie: its token must still be as found."""
        return Guard(self.key, self.version)


class CookieTokens:
    """Issue, resolve and rotate the tokens that browsers present as session cookies."""

    def __init__(
        self,
        repository: Repository[UUID],
        digester: Digester,
        heads: AggregateHeads | None = None,
        remembered: int = 20_000,
    ) -> None:
        self._repository = repository
        self._digester = digester
        self._heads = heads
        # token key -> (session id, version at which the token was valid)
        self._valid: LRUCache[UUID, tuple[int, int]] = LRUCache(maxsize=remembered)

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
        known = self.remembered(token)
        heads = self._heads
        if known is not None and heads is not None and heads.version_of(known.key) == known.version:
            return known.session_id
        key = known.key if known is not None else self._key(token)
        try:
            aggregate: Aggregate = self._repository.get(key)
        except AggregateNotFoundError:
            raise Unauthorized from None
        if not isinstance(aggregate, SessionToken) or aggregate.revoked:
            raise Unauthorized
        self._valid.put(key, (aggregate.session_id, aggregate.version))
        return aggregate.session_id

    def remembered(self, token: str | None) -> Remembered | None:
        """What this process knows of a token it found valid, without reading the store;
        the caller must check the version before trusting it (see :class:`Remembered`)."""
        if not token or len(token) > 256 or not token.isascii():
            return None
        key = self._key(token)
        try:
            session_id, version = self._valid.get(key)
        except KeyError:
            return None
        return Remembered(session_id, key, version)

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
