"""Webhook endpoints: where to send, what to send there, and the secrets that sign it.

An endpoint's secret is shown once, when it is created or rotated, and kept only sealed
(:class:`~infrastructure.webhooks.signing.SecretBox`). A rotation keeps the previous secret
for an overlap window, during which deliveries carry a signature by each.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from application.errors import InvalidRequest, UnknownEndpoint
from application.read_model import rfc3339
from infrastructure.ids import SnowflakeGenerator
from infrastructure.sql import Row, SqlDatabase
from infrastructure.webhooks.addresses import parse_url
from infrastructure.webhooks.catalogue import EVENT_TYPES
from infrastructure.webhooks.signing import SecretBox, new_secret
from infrastructure.webhooks.tables import ENDPOINTS, from_ms


def now_ms() -> int:
    """The wall clock in milliseconds (delivery runs on real time, whatever events say)."""
    return int(time.time() * 1000)


def time_of(value: Any) -> str | None:
    """RFC 3339 of a millisecond count (None stays None)."""
    moment = from_ms(value)
    return None if moment is None else rfc3339(moment)


@dataclass(frozen=True)
class Endpoint:
    """An endpoint as operators see it (never its secret)."""

    id: int
    url: str
    event_types: list[str]
    enabled: bool
    created_at: str
    since_position: int
    disabled_at: str | None
    disabled_reason: str | None
    failure_streak: int
    rotation_overlap_until: str | None
    attempts_total: int
    failures_total: int
    delivered_total: int

    @classmethod
    def of(cls, row: Row) -> Endpoint:
        """From a table row."""
        until = row["previous_until"]
        return cls(
            id=int(row["id"]),
            url=str(row["url"]),
            event_types=list(json.loads(row["event_types"])),
            enabled=bool(row["enabled"]),
            created_at=time_of(row["created_at"]) or "",
            since_position=int(row["since_position"]),
            disabled_at=time_of(row["disabled_at"]),
            disabled_reason=row["disabled_reason"],
            failure_streak=int(row["failure_streak"]),
            rotation_overlap_until=time_of(until) if until and int(until) > now_ms() else None,
            attempts_total=int(row["attempts_total"]),
            failures_total=int(row["failures_total"]),
            delivered_total=int(row["delivered_total"]),
        )

    def as_json(self) -> dict[str, Any]:
        """Ids as strings, like every id on the wire."""
        return {**vars(self), "id": str(self.id)}


def check_event_types(types: Sequence[str] | None) -> list[str]:
    """The subscribed types (the whole catalogue when none are named); InvalidRequest."""
    if types is None or len(types) == 0:
        return list(EVENT_TYPES)
    unknown = [t for t in types if t not in EVENT_TYPES]
    if unknown:
        raise InvalidRequest(f"Unknown event type: {unknown[0][:100]}. See the catalogue.")
    return sorted(set(types), key=EVENT_TYPES.index)


class EndpointStore:
    """CRUD of endpoints, and their live secrets for signing."""

    def __init__(
        self,
        db: SqlDatabase,
        box: SecretBox,
        head: Callable[[], int],
        allow_private: Callable[[], bool],
    ) -> None:
        self.db = db
        self.box = box
        self._head = head
        self._allow_private = allow_private
        self._ids = SnowflakeGenerator()
        self._table = db.table(ENDPOINTS)

    def _row(self, endpoint_id: int) -> Row:
        with self.db.read() as cursor:
            cursor.execute(f"SELECT * FROM {self._table} WHERE id = %(id)s", {"id": endpoint_id})
            row = cursor.fetchone()
        if row is None:
            raise UnknownEndpoint
        return row

    def get(self, endpoint_id: int) -> Endpoint:
        """One endpoint; UnknownEndpoint."""
        return Endpoint.of(self._row(endpoint_id))

    def all(self) -> list[Endpoint]:
        """Every endpoint, oldest first."""
        with self.db.read() as cursor:
            cursor.execute(f"SELECT * FROM {self._table} ORDER BY id")
            return [Endpoint.of(r) for r in cursor.fetchall()]

    def create(
        self, url: str, event_types: Sequence[str] | None, enabled: bool = True
    ) -> tuple[Endpoint, str]:
        """A new endpoint receiving events recorded from now on; and its secret (shown once)."""
        parse_url(url, self._allow_private())
        types = check_event_types(event_types)
        secret = new_secret()
        endpoint_id = self._ids.next_id()
        with self.db.transaction() as cursor:
            cursor.execute(
                f"INSERT INTO {self._table} (id, url, event_types, enabled, created_at, "
                "since_position, secret) VALUES (%(id)s, %(url)s, %(types)s, %(enabled)s, "
                "%(now)s, %(since)s, %(secret)s)",
                {
                    "id": endpoint_id,
                    "url": url,
                    "types": json.dumps(types),
                    "enabled": int(enabled),
                    "now": now_ms(),
                    "since": self._head(),
                    "secret": self.box.seal(secret, endpoint_id, "current"),
                },
            )
        return self.get(endpoint_id), secret

    def update(
        self,
        endpoint_id: int,
        url: str | None = None,
        event_types: Sequence[str] | None = None,
        enabled: bool | None = None,
    ) -> Endpoint:
        """Change the URL, the subscribed types, or enable (clearing an automatic disable)
        or disable the endpoint."""
        self._row(endpoint_id)
        changes: dict[str, Any] = {}
        if url is not None:
            parse_url(url, self._allow_private())
            changes["url"] = url
        if event_types is not None:
            changes["event_types"] = json.dumps(check_event_types(event_types))
        if enabled is not None:
            changes["enabled"] = int(enabled)
            if enabled:
                changes.update(
                    disabled_at=None, disabled_reason=None, failure_streak=0, streak_since=None
                )
            else:
                changes.update(disabled_at=now_ms(), disabled_reason="disabled by an operator")
        if changes:
            assignments = ", ".join(f"{column} = %({column})s" for column in changes)
            with self.db.transaction() as cursor:
                cursor.execute(
                    f"UPDATE {self._table} SET {assignments} WHERE id = %(id)s",
                    {**changes, "id": endpoint_id},
                )
        return self.get(endpoint_id)

    def rotate(self, endpoint_id: int, overlap_seconds: float) -> tuple[Endpoint, str]:
        """A new secret (shown once); the current one keeps signing for ``overlap_seconds``."""
        if not 0 <= overlap_seconds <= 30 * 24 * 3600:
            raise InvalidRequest("The overlap must be between 0 and 30 days.")
        secret = new_secret()
        with self.db.transaction(immediate=True) as cursor:
            cursor.execute(
                f"SELECT secret FROM {self._table} WHERE id = %(id)s{self.db.for_update()}",
                {"id": endpoint_id},
            )
            row = cursor.fetchone()
            if row is None:
                raise UnknownEndpoint
            current = self.box.open(str(row["secret"]), endpoint_id, "current")
            cursor.execute(
                f"UPDATE {self._table} SET secret = %(secret)s, previous_secret = %(previous)s, "
                "previous_until = %(until)s WHERE id = %(id)s",
                {
                    "id": endpoint_id,
                    "secret": self.box.seal(secret, endpoint_id, "current"),
                    "previous": self.box.seal(current, endpoint_id, "previous"),
                    "until": now_ms() + int(overlap_seconds * 1000),
                },
            )
        return self.get(endpoint_id), secret

    def signing_secrets(self, row: Row) -> list[str]:
        """The secrets deliveries are signed with now: the current one, and the previous one
        while the rotation overlap lasts."""
        endpoint_id = int(row["id"])
        found = [self.box.open(str(row["secret"]), endpoint_id, "current")]
        until = row["previous_until"]
        if row["previous_secret"] and until is not None and int(until) > now_ms():
            found.append(self.box.open(str(row["previous_secret"]), endpoint_id, "previous"))
        return found

    def enabled_rows(self) -> list[Row]:
        """The rows of the enabled endpoints (for the sender)."""
        with self.db.read() as cursor:
            cursor.execute(f"SELECT * FROM {self._table} WHERE enabled = 1 ORDER BY id")
            return cursor.fetchall()
