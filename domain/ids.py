"""Identifiers of the wire contract: unsigned 64-bit integers sent as decimal strings."""

from __future__ import annotations

import re
from uuid import UUID

MAX_ID = 2**64 - 1
_CANONICAL_DECIMAL = re.compile(r"[1-9][0-9]{0,19}")


def parse_id(raw: str | None) -> int | None:
    """Return the id that ``raw`` spells, or None unless it is canonical.

    Canonical means ASCII digits only, no sign, space, underscore or leading zero, and a
    value that fits in 64 unsigned bits. ``int()`` alone would accept all of those.
    """
    if raw is None or not raw.isascii() or _CANONICAL_DECIMAL.fullmatch(raw) is None:
        return None
    value = int(raw)
    return value if value <= MAX_ID else None


def aggregate_uuid(snowflake: int) -> UUID:
    """Map a 64-bit id into the event store's UUID key space, reversibly."""
    return UUID(int=snowflake)


def snowflake_of(uuid: UUID) -> int:
    """Inverse of :func:`aggregate_uuid`."""
    return uuid.int
