"""How auditors read events: one event as JSON, and the lines of an export, written and
read back.

Export lines carry both a readable view (type, time, data, request context) and the exact
stored form (topic, payload in base64), so an import reproduces the events byte for byte and
therefore the same chain head. Field names are documented in docs/audit.md.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent

from application.errors import InvalidExport
from application.read_model import rfc3339
from application.request_context import CONTEXT_KEY
from infrastructure.audit.chain import GENESIS, originator_key

EXPORT_FORMAT = "session-ledger-audit/1"


@dataclass(frozen=True)
class AuditEvent:
    """One event as auditors read it."""

    position: int | None
    session_id: str | None
    aggregate: str
    version: int
    type: str
    time: str
    data: dict[str, Any]
    context: dict[str, Any] | None

    def as_json(self) -> dict[str, Any]:
        """Stable field names (docs/audit.md)."""
        return {
            "position": self.position,
            "session_id": self.session_id,
            "aggregate": self.aggregate,
            "version": self.version,
            "type": self.type,
            "time": self.time,
            "data": self.data,
            "context": self.context,
        }


def audit_event(stored: StoredEvent, position: int | None, payload: dict[str, Any]) -> AuditEvent:
    """A stored event, and its decoded payload, as auditors read it."""
    context = payload.pop(CONTEXT_KEY, None)
    timestamp = payload.pop("timestamp", None)
    payload.pop("originator_topic", None)
    key = (
        stored.originator_id
        if isinstance(stored.originator_id, UUID)
        else UUID(str(stored.originator_id))
    )
    return AuditEvent(
        position=position,
        session_id=str(key.int) if key.int < 2**64 else None,
        aggregate=stored.topic.split(":")[-1].split(".")[0],
        version=stored.originator_version,
        type=stored.topic.split(".")[-1],
        time=rfc3339(timestamp) if isinstance(timestamp, datetime) else "",
        data=plain(payload),
        context=context,
    )


def export_line(event: AuditEvent, stored: StoredEvent, global_hash: str | None) -> str:
    """One line of an export: the readable view and the exact stored form."""
    line = event.as_json()
    line.update(
        format=EXPORT_FORMAT,
        originator_id=originator_key(stored.originator_id),
        topic=stored.topic,
        payload=base64.b64encode(bytes(stored.state)).decode(),
        global_hash=global_hash,
    )
    return json.dumps(line, separators=(",", ":")) + "\n"


def read_export(lines: Iterable[str], chain: Any) -> list[StoredEvent]:
    """The events of a complete export, checked: versions without gaps, and (with a chain)
    each line's global hash matching the chain recomputed from the lines."""
    events: list[StoredEvent] = []
    versions: dict[str, int] = {}
    heads: dict[str, bytes] = {}
    head = GENESIS
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if record.get("format") != EXPORT_FORMAT:
                raise ValueError(f"format is not {EXPORT_FORMAT}")
            event = StoredEvent(
                originator_id=UUID(record["originator_id"]),
                originator_version=int(record["version"]),
                topic=str(record["topic"]),
                state=base64.b64decode(record["payload"], validate=True),
            )
        except (ValueError, KeyError, TypeError) as error:
            raise InvalidExport(f"line {number}: {error}") from None
        key = originator_key(event.originator_id)
        if event.originator_version != versions.get(key, 0) + 1:
            raise InvalidExport(
                f"line {number}: version {event.originator_version} of {key} does not follow "
                f"version {versions.get(key, 0)}; a partial export (--since) cannot be imported"
            )
        versions[key] = event.originator_version
        if chain is not None:
            digest = chain.event_hash(event)
            head = chain.link(head, digest)
            heads[key] = chain.link(heads.get(key, GENESIS), digest)
            if record.get("global_hash") not in (None, head.hex()):
                raise InvalidExport(f"line {number}: the chain does not match (altered export)")
        events.append(event)
    return events


def plain(value: Any) -> Any:
    """JSON-safe: ids as strings (they exceed JavaScript's integers), times in RFC 3339."""
    if isinstance(value, bool) or value is None or isinstance(value, (str, float)):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, datetime):
        return rfc3339(value)
    if isinstance(value, UUID):
        return value.hex
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return str(value)
