"""The limits and lifetimes of sessions that settings may change."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True)
class SessionPolicy:
    """Limits and lifetimes that settings may change."""

    max_sign_ins: int = 5
    sign_in_lifetime: timedelta = timedelta(days=30)
    attempt_lifetime: timedelta = timedelta(minutes=30)
    command_retries: int = 20
    idle_timeout: timedelta | None = timedelta(days=7)
    activity_resolution: timedelta = timedelta(minutes=15)
    token_lifetime: timedelta = timedelta(seconds=60)
    token_issuer: str = "session-ledger"  # noqa: S105 - the JWT "iss" claim, not a secret
