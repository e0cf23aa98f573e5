"""The request a command came from, recorded inside each event it produces.

The API sets :data:`current_request` for the duration of a request (to a function that
builds the context on first use: most requests record nothing); :class:`ContextMapper`
adds it to the stored payload of every aggregate event (never of snapshots) under
``_context``, where the audit trail reads it back. Domain code never sees it.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from eventsourcing.domain import CanSnapshotAggregate
from eventsourcing.persistence import Mapper, StoredEvent
from eventsourcing.utils import get_topic

from application.ports import RequestContext

CONTEXT_KEY = "_context"

current_request: ContextVar[Callable[[], RequestContext] | None] = ContextVar(
    "current_request", default=None
)


class ContextMapper(Mapper[Any]):
    """The library's mapper, plus the current request's context in each event's payload."""

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        """As the library does, with ``_context`` added when there is a request."""
        source = current_request.get()
        if source is None or isinstance(domain_event, CanSnapshotAggregate):
            return super().to_stored_event(domain_event)
        context = source()
        event_state = dict(vars(domain_event))
        originator_id = event_state.pop("originator_id")
        originator_version = event_state.pop("originator_version")
        class_version = getattr(type(domain_event), "class_version", 1)
        if class_version > 1:
            event_state["class_version"] = class_version
        event_state[CONTEXT_KEY] = {
            "client_address": context.client_address,
            "user_agent": context.user_agent,
            "request_id": context.request_id,
        }
        stored_state = self.transcoder.encode(event_state)
        if self.compressor:
            stored_state = self.compressor.compress(stored_state)
        if self.cipher:
            stored_state = self.cipher.encrypt(stored_state)
        return StoredEvent(
            originator_id=originator_id,
            originator_version=originator_version,
            topic=get_topic(type(domain_event)),
            state=stored_state,
        )

    def to_domain_event(self, stored_event: StoredEvent) -> Any:
        """As the library does, without the context (which is not part of the event)."""
        event = super().to_domain_event(stored_event)
        vars(event).pop(CONTEXT_KEY, None)
        return event

    def payload(self, stored_event: StoredEvent) -> dict[str, Any]:
        """The decoded payload of a stored event, context included (for audits)."""
        state = stored_event.state
        if self.cipher:
            state = self.cipher.decrypt(state)
        if self.compressor:
            state = self.compressor.decompress(state)
        decoded: dict[str, Any] = self.transcoder.decode(state)
        return decoded
