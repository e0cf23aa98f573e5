"""The chain heads a PostgreSQL recorder expects: a guess the append statement checks.

Each append continues two hash chains, the global one and its session's. Reading their heads
under the table lock would cost a round trip while holding it; instead the recorder guesses
them (as this process last wrote or read them), and the append statement checks the guess
under the lock, so a stale one costs a retry, never a wrong seal.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eventsourcing.application import LRUCache
from eventsourcing.persistence import StoredEvent

from infrastructure.audit.chain import originator_key

UNKNOWN: Any = object()  # a head this process has no guess for


class KnownHeads:
    """The heads as this process last wrote or read them, for so many sessions."""

    def __init__(self, size: int = 65_536) -> None:
        self.global_head: str | None = UNKNOWN
        self._sessions: LRUCache[str, str | None] = LRUCache(maxsize=size)

    def session(self, originator: str) -> str | None:
        """A session's head (None: the chain is empty), or UNKNOWN."""
        try:
            return self._sessions.get(originator)
        except KeyError:
            return UNKNOWN  # type: ignore[no-any-return]

    def learn(self, global_head: str | None, sessions: dict[str, str | None]) -> None:
        """Remember the heads a commit wrote, or a read found."""
        self.global_head = global_head
        for originator, head in sessions.items():
            self._sessions.put(originator, head)

    def forget(self) -> None:
        """Forget the global head (another process may have moved it)."""
        self.global_head = UNKNOWN

    def guess(
        self, events: Sequence[StoredEvent], originators: Sequence[str]
    ) -> tuple[str | None, dict[str | None, str | None], list[str]]:
        """The global head (or UNKNOWN), the session heads known, and the sessions whose
        head must be read. A session appending its version 1 starts at genesis."""
        first_versions: dict[str, int] = {}
        for e in events:
            key = originator_key(e.originator_id)
            first_versions[key] = min(first_versions.get(key, e.originator_version),
                                      e.originator_version)  # fmt: skip
        heads: dict[str | None, str | None] = {}
        unknown = []
        for originator in originators:
            known = self.session(originator)
            if known is not UNKNOWN:
                heads[originator] = known
            elif first_versions[originator] == 1:
                heads[originator] = None  # a new aggregate: its chain starts at genesis
            else:
                unknown.append(originator)
        return self.global_head, heads, unknown
