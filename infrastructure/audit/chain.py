"""The hash chains that bind every stored event, and the table that keeps them.

For each stored event (originator O, version V, topic T, payload S), in log order::

    event_hash   = H("event" | O | V | T | S)
    session_hash = H(previous session_hash of O, or 32 zero bytes | event_hash)
    global_hash  = H(previous global_hash, or 32 zero bytes | event_hash)

H is HMAC-SHA256 with ``SESSION_LEDGER_AUDIT_KEY`` when that is set (then nobody without
the key can forge a consistent chain), else SHA-256 (then an auditor keeps the chain head
elsewhere and checks it later). The seal row of each event is written in the same
transaction as the event, under the table lock that orders the log, so an event without
a seal was not written by the service.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

from eventsourcing.persistence import StoredEvent

GENESIS = bytes(32)
CHAIN_TABLE = "audit_chain"


@dataclass(frozen=True)
class Seal:
    """One event's place in both chains."""

    position: int
    originator_id: str
    originator_version: int
    event_hash: bytes
    session_hash: bytes
    global_hash: bytes


class Chain:
    """Computes seals; the key, if any, comes from the environment, never the store."""

    def __init__(self, key: bytes | None = None) -> None:
        self._key = key

    def _h(self, *parts: bytes) -> bytes:
        message = b"".join(len(p).to_bytes(4, "big") + p for p in parts)
        if self._key:
            return hmac.new(self._key, message, hashlib.sha256).digest()
        return hashlib.sha256(message).digest()

    def event_hash(self, event: StoredEvent) -> bytes:
        """The hash of one stored event (positions are bound by the global chain's order,
        not hashed, so an export re-imported elsewhere reproduces the same chain)."""
        return self._h(
            b"event",
            _originator(event.originator_id).encode(),
            str(event.originator_version).encode(),
            event.topic.encode(),
            _bytes(event.state),
        )

    def link(self, previous: bytes, event_hash: bytes) -> bytes:
        """The next link of a chain."""
        return self._h(previous, event_hash)

    def seal(
        self,
        events: Sequence[StoredEvent],
        positions: Sequence[int],
        global_head: bytes,
        session_heads: dict[str, bytes],
        digests: Sequence[bytes] | None = None,
    ) -> list[Seal]:
        """Seals for events just appended, continuing from the given heads (``digests``
        are the events' hashes when the caller computed them already)."""
        seals = []
        for index, (event, position) in enumerate(zip(events, positions, strict=True)):
            originator = _originator(event.originator_id)
            digest = digests[index] if digests is not None else self.event_hash(event)
            session_hash = self.link(session_heads.get(originator, GENESIS), digest)
            global_head = self.link(global_head, digest)
            session_heads[originator] = session_hash
            seals.append(
                Seal(
                    position,
                    originator,
                    event.originator_version,
                    digest,
                    session_hash,
                    global_head,
                )
            )
        return seals


def _bytes(state: object) -> bytes:
    # A tampered row may come back as text rather than bytes; hash what is there.
    if isinstance(state, (bytes, bytearray, memoryview)):
        return bytes(state)
    return str(state).encode()


def _originator(originator_id: UUID | str) -> str:
    return originator_id.hex if isinstance(originator_id, UUID) else str(originator_id)


def originator_key(originator_id: UUID | str) -> str:
    """How the chain table names an originator."""
    return _originator(originator_id)
