"""A session history stored by the code before issue #12 still loads, event by event.

``data/session-history-e90cf89.json`` holds every kind of Session event as commit e90cf89
stored it (topic and payload, byte for byte), and the state folded after each one; the
script that wrote it is ``data/session-history-e90cf89.generator.txt``. Events must keep
their topics and fields, so this history must keep loading to the same states.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.persistence import StoredEvent

from application.read_model import session_document
from domain.session import Session
from infrastructure.container import Services
from tests.helpers import services_for

HISTORY = json.loads((Path(__file__).parent / "data" / "session-history-e90cf89.json").read_text())
ORIGINATOR = UUID(HISTORY["originator_id"])


def stored_events() -> list[StoredEvent]:
    return [
        StoredEvent(ORIGINATOR, e["version"], e["topic"], e["state"].encode())
        for e in HISTORY["events"]
    ]


@pytest.fixture
def services() -> Iterator[Services]:
    with services_for("memory://") as built:
        built.sessions.recorder.insert_events(stored_events())
        yield built


def folded(session: Session) -> dict[str, Any]:
    state = {
        "version": session.version,
        "modified_on": session.modified_on.isoformat(),
        "active_sign_in_id": session.active_sign_in_id,
        "sign_ins": [dataclasses.asdict(s) for s in session.sign_ins],
        "attempts": [dataclasses.asdict(a) for a in session.attempts],
    }
    loaded: dict[str, Any] = json.loads(json.dumps(state, default=str))
    return loaded


def test_every_stored_event_loads_and_stores_again_byte_for_byte(services: Services) -> None:
    mapper = services.sessions.mapper
    for stored in stored_events():
        event = mapper.to_domain_event(stored)
        assert isinstance(event, Session.Event)
        again = mapper.to_stored_event(event)
        assert (again.topic, again.state) == (stored.topic, stored.state)


def test_the_history_folds_to_the_states_it_folded_to_when_written(services: Services) -> None:
    for expected in HISTORY["states"]:
        session: Session = services.sessions.repository.get(ORIGINATOR, version=expected["version"])
        assert isinstance(session, Session)
        assert folded(session) == expected


def test_the_history_renders_the_document_it_rendered_when_written(services: Services) -> None:
    at = HISTORY["document_at"]
    session: Session = services.sessions.repository.get(ORIGINATOR, version=at["version"])
    now = datetime.fromisoformat(at["now"])
    document = session_document(session, services.directory, now)
    assert document.model_dump(mode="json") == at["document"]
    assert session.session_id == HISTORY["session_id"]
