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

    def profiles_in_memory(self, user_ids: Iterable[int]) -> dict[int, UserProfile] | None:
        """These users' profiles if every one of them is fresh here; else None."""
        now = self._monotonic()
        found = {}
        for user_id in user_ids:
            profile = self._fresh(user_id, now)
            if profile is None:
                return None
            found[user_id] = profile
        return found

    def user_profiles(self, user_ids: Iterable[int]) -> dict[int, UserProfile]:
        """Profiles of the users that exist among ``user_ids``; fresh ones from memory."""
        now = self._monotonic()
        found: dict[int, UserProfile] = {}
        missing: list[int] = []
        for user_id in user_ids:
            profile = self._fresh(user_id, now)
            if profile is None:
                missing.append(user_id)
            else:
                found[user_id] = profile
        if missing:
            fetched = super().user_profiles(missing)
            for user_id, profile in fetched.items():
                self._profiles.put(user_id, (now + self._ttl, profile))
            found.update(fetched)
        return found

    def _fresh(self, user_id: int, now: float) -> UserProfile | None:
        """The user's profile if it is here and not older than the time to live."""
        try:
            kept_until, profile = self._profiles.get(user_id)
        except KeyError:
            return None
        return profile if kept_until > now else None
