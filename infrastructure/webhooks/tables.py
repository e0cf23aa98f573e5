"""The webhook tables, beside the projections (in the views database; created by
:mod:`infrastructure.migrations`).

Times are integer milliseconds since the epoch, the same on both stores, so scheduling
compares numbers. A message is stored once, with the exact body every delivery of it sends;
a delivery is one message for one endpoint (at most one row each: exactly-once creation);
each attempt of a delivery is a row of its own.
"""

from __future__ import annotations

from datetime import UTC, datetime

ENDPOINTS = "webhook_endpoints"
MESSAGES = "webhook_messages"
DELIVERIES = "webhook_deliveries"
ATTEMPTS = "webhook_attempts"
SESSIONS = "webhook_sessions"
SIGN_INS = "webhook_sign_ins"


def to_ms(moment: datetime) -> int:
    """Milliseconds since the epoch."""
    return int(moment.timestamp() * 1000)


def from_ms(value: int | None) -> datetime | None:
    """The UTC time of a millisecond count (None stays None)."""
    return None if value is None else moment(value)


def moment(value: int) -> datetime:
    """The UTC time of a millisecond count."""
    return datetime.fromtimestamp(int(value) / 1000, UTC)
