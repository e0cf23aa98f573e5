"""The chain heads a PostgreSQL recorder expects: a guess the append statement checks.

Each append continues two hash chains, the global one and its session's. Reading their heads
under the table lock would cost a round trip while holding it; instead the recorder guesses
them (as this process last wrote or read them), and the append statement checks the guess
under the lock, so a stale one costs a retry, never a wrong seal.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from eventsourcing.application import LRUCache
from eventsourcing.persistence import StoredEvent

from infrastructure.audit.chain import originator_key

UNKNOWN: Any = object()  # a head this process has no guess for
_NOW = 2**63  # the position of heads read or refused: later than anything followed since


class KnownHeads:
    """The heads as this process last wrote, read or followed them, for so many sessions.

    Each head is kept with the log position it is known at, so a head followed from the log
    (see :mod:`infrastructure.audit.following`) replaces only an older one. Heads a refused
    append returned were current under the table lock, newer than anything the follower
    may still deliver: only this process's next commit or refusal replaces them.
    """

    def __init__(self, size: int = 65_536) -> None:
        self._global: tuple[int | None, str | None] = (None, UNKNOWN)
        self._sessions: LRUCache[str, tuple[int | None, str | None]] = LRUCache(maxsize=size)
        self._lock = threading.Lock()

    @property
    def global_head(self) -> str | None:
        """The global chain's head (None: the chain is empty), or UNKNOWN."""
        return self._global[1]

    def session(self, originator: str) -> str | None:
        """A session's head (None: the chain is empty), or UNKNOWN."""
        try:
            return self._sessions.get(originator)[1]
        except KeyError:
            return UNKNOWN  # type: ignore[no-any-return]

    def learn(
        self, global_head: str | None, sessions: dict[str, str | None], position: int | None = None
    ) -> None:
        """Remember the heads a commit wrote (the last ``position`` it was given), or a
        read or a refused append found (no position: current now)."""
        at = _NOW if position is None else position
        with self._lock:
            self._global = (at, global_head)
            for originator, head in sessions.items():
                self._sessions.put(originator, (at, head))

    def follow(self, position: int, global_head: str, sessions: dict[str, tuple[int, str]]) -> None:
        """Remember heads read from the log up to ``position`` (each session's with its own
        position), where they are newer than what this process knows."""
        with self._lock:
            if _older(self._global[0], position):
                self._global = (position, global_head)
            for originator, (at, head) in sessions.items():
                try:
                    known = self._sessions.get(originator)[0]
                except KeyError:
                    known = None
                if _older(known, at):
                    self._sessions.put(originator, (at, head))

    def forget(self) -> None:
        """Forget the global head (another process may have moved it)."""
        self._global = (None, UNKNOWN)

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


def _older(known: int | None, position: int) -> bool:
    """Whether a head known at ``known`` (None: not known) is older than one at ``position``."""
    return known is None or known < position
