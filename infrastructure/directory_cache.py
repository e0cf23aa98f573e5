"""User profiles kept in process for rendering sessions, for a few seconds.

Every answer that carries a session renders its sign-ins with their users' names and
emails: without a cache that is one directory query per request (a switch's only read
besides its append). Profiles change only when an operator loads a directory, so rendering
may show one up to ``ttl_seconds`` old; a user's memberships, roles and permissions are
never cached, and neither is anything sign-in reads (emails that codes go to, passwords).
Absent users are not cached, so a user created by a sign-up shows at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from eventsourcing.application import LRUCache

from application.ports import Clock, UserProfile
from infrastructure.directory_store import SqlDirectory
from infrastructure.sql import SqlDatabase

Monotonic = Callable[[], float]


class ProfileCachingDirectory(SqlDirectory):
    """A :class:`SqlDirectory` whose ``user_profiles`` answers from memory when it can."""

    def __init__(
        self,
        db: SqlDatabase,
        ttl_seconds: float,
        clock: Clock | None = None,
        size: int = 10_000,
        monotonic: Monotonic = time.monotonic,
    ) -> None:
        super().__init__(db, clock)
        self._ttl = ttl_seconds
        self._monotonic = monotonic
        self._profiles: LRUCache[int, tuple[float, UserProfile]] = LRUCache(maxsize=size)

    def profiles_in_memory(self, user_ids: Iterable[int]) -> bool:
        """Whether every one of these users has a fresh profile here."""
        now = self._monotonic()
        for user_id in user_ids:
            try:
                kept_until, _ = self._profiles.get(user_id)
            except KeyError:
                return False
            if kept_until <= now:
                return False
        return True

    def user_profiles(self, user_ids: Iterable[int]) -> dict[int, UserProfile]:
        """Profiles of the users that exist among ``user_ids``; fresh ones from memory."""
        now = self._monotonic()
        found: dict[int, UserProfile] = {}
        missing: list[int] = []
        for user_id in user_ids:
            try:
                kept_until, profile = self._profiles.get(user_id)
            except KeyError:
                missing.append(user_id)
                continue
            if kept_until > now:
                found[user_id] = profile
            else:
                missing.append(user_id)
        if missing:
            fetched = super().user_profiles(missing)
            for user_id, profile in fetched.items():
                self._profiles.put(user_id, (now + self._ttl, profile))
            found.update(fetched)
        return found
