"""Session answers kept as the bytes they were rendered to, while nothing they show changes.

Wacht's SDK polls ``GET /session`` from every tab; most polls find the session as it was.
Rendering its document (pydantic models, then JSON) cost the read a fifth of its CPU under
load. A :class:`~application.read_model.Rendering` names everything a document rendered
from memory depends on (the session's version, its users' profiles) and until when the
instant does not matter; a poll whose rendering has the same key, before that instant, is
answered with the bytes rendered for the previous one. Whether the session and its cookie
are current is still read from the store by every request (the key comes from that read),
so this keeps no answer a write or a revocation would change.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from datetime import datetime
from typing import NamedTuple

from eventsourcing.application import LRUCache
from fastapi.responses import JSONResponse

from api.envelope import NO_STORE, RenderedJSONResponse
from application.read_model import Rendering

SIZE = 5_000  # sessions (a body of two sign-ins is about 3 kB)


class _Kept(NamedTuple):
    key: Hashable
    until: datetime
    body: bytes


class RenderedBodies:
    """The last body rendered for each of the most recently answered sessions."""

    def __init__(self, size: int = SIZE) -> None:
        self._kept: LRUCache[int, _Kept] = LRUCache(maxsize=size)

    def __len__(self) -> int:
        """How many sessions' bodies are kept."""
        return len(self._kept.cache)

    def answer(
        self, rendering: Rendering, now: datetime, render: Callable[[], JSONResponse]
    ) -> JSONResponse:
        """The answer ``render`` gives for ``rendering`` at ``now``: the body kept for an
        equal rendering if ``now`` is before its ``until``, else ``render``'s, then kept."""
        try:
            kept = self._kept.get(rendering.session_id)
        except KeyError:
            pass
        else:
            if kept.key == rendering.key and now < kept.until:
                return RenderedJSONResponse(kept.body, headers=NO_STORE)
        response = render()
        if response.status_code == 200 and "set-cookie" not in response.headers:
            body = bytes(response.body)
            self._kept.put(rendering.session_id, _Kept(rendering.key, rendering.until, body))
        return response
