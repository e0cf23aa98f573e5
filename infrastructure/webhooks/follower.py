"""The webhook follower: a projection of the event log into messages and deliveries.

It runs on the projection engine (:class:`~infrastructure.projections.engine.Projector`), so
a batch of events, the messages and deliveries they create, the little state the rules need
(live sign-ins per session) and the new position commit in one transaction, under the lock
of the follower's ``projection_state`` row: a crash at any moment, or two processes at once,
never create a message twice or skip one. Its tables are not generations: messages, once
created, keep their ids for ever (replays resend them), so this projection is never rebuilt.

A message's id (``webhook-id``) is ``msg_<position>_<n>``: the n-th webhook event of the
event at that position of the log. A delivery is created for every endpoint that is enabled,
subscribes to the type and was created before the event (later endpoints are back-filled by
a replay).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from application.read_model import rfc3339
from domain.ids import snowflake_of
from domain.session import Session
from infrastructure.projections.projection import (
    Payload,
    ProjectedEvent,
    Projection,
    Write,
    recorded_context,
)
from infrastructure.sql import SqlCursor, SqlDatabase, insert_rows, select_in
from infrastructure.webhooks import tables
from infrastructure.webhooks.catalogue import RULES, SessionState, SignInRow
from infrastructure.webhooks.tables import moment, to_ms

NAME = "webhooks"


@dataclass(frozen=True)
class Message:
    """One webhook event to deliver: its id, type, time, position and exact body."""

    id: str
    position: int
    type: str
    occurred_at: int
    body: str


def message_body(webhook_type: str, timestamp: str, data: dict[str, Any]) -> str:
    """The body every delivery of a message sends, byte for byte: ``{type, timestamp, data}``."""
    body = {"type": webhook_type, "timestamp": timestamp, "data": data}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


class WebhookProjection(Projection):
    """Turns session events into messages and per-endpoint deliveries."""

    name: ClassVar[str] = NAME
    tables: ClassVar[tuple[str, ...]] = ()  # nothing per generation: see the module docstring

    def __init__(self, payload: Payload) -> None:
        self._payload = payload  # the request context of sign-in events goes into payloads

    def create_statements(self, db: SqlDatabase, generation: int) -> list[str]:
        """Nothing per generation: the webhook tables are a migration's, and read directly
        (no views)."""
        return []

    def apply(self, write: Write, batch: Sequence[ProjectedEvent]) -> None:
        """Fold the batch, write the messages, their deliveries and the follower's state."""
        events = [p for p in batch if isinstance(p.event, Session.Event)]
        cursor, db = write.cursor, write.db
        states = _load(cursor, db, {snowflake_of(p.event.originator_id) for p in events})
        touched: dict[int, SessionState] = {}
        messages: list[Message] = []
        for projected in events:
            event = projected.event
            name = type(event).__name__
            session_id = snowflake_of(event.originator_id)
            state = states.get(session_id)
            if state is None:
                state = states[session_id] = SessionState(
                    session_id, event.timestamp, event.timestamp
                )
            state.updated_at = event.timestamp
            touched[session_id] = state
            rule = RULES.get(name)
            if rule is None:
                continue
            context = recorded_context(projected, self._payload)
            when = rfc3339(event.timestamp)
            for index, (kind, data) in enumerate(rule(state, event, context)):
                messages.append(
                    Message(
                        id=f"msg_{projected.position}_{index}",
                        position=projected.position,
                        type=kind,
                        occurred_at=to_ms(event.timestamp),
                        body=message_body(kind, when, data),
                    )
                )
        _save_states(cursor, db, touched.values())
        _save_messages(cursor, db, messages)


def _load(cursor: SqlCursor, db: SqlDatabase, session_ids: set[int]) -> dict[int, SessionState]:
    keys = [str(k) for k in session_ids]
    states: dict[int, SessionState] = {}
    for row in select_in(cursor, f"SELECT * FROM {db.table(tables.SESSIONS)}", "session_id", keys):
        active = row["active_sign_in_id"]
        states[int(row["session_id"])] = SessionState(
            session_id=int(row["session_id"]),
            created_at=moment(row["created_at"]),
            updated_at=moment(row["updated_at"]),
            active_sign_in_id=None if active is None else int(active),
        )
    for row in select_in(cursor, f"SELECT * FROM {db.table(tables.SIGN_INS)}", "session_id", keys):
        state = states.get(int(row["session_id"]))
        if state is None:
            continue
        org, ws = row["organization_membership_id"], row["workspace_membership_id"]
        state.sign_ins[int(row["id"])] = SignInRow(
            id=int(row["id"]),
            session_id=state.session_id,
            user_id=int(row["user_id"]),
            method=str(row["method"]),
            created_at=moment(row["created_at"]),
            expires_at=moment(row["expires_at"]),
            organization_membership_id=None if org is None else int(org),
            workspace_membership_id=None if ws is None else int(ws),
        )
    return states


# The PostgreSQL types of the columns each batch writes (for insert_rows).
_BIGINT = "bigint"
_SESSION_TYPES = dict.fromkeys(
    ("session_id", "created_at", "updated_at", "active_sign_in_id"), _BIGINT
)
_SIGN_IN_TYPES = dict.fromkeys(
    ("id", "session_id", "user_id", "created_at", "expires_at", "organization_membership_id",
     "workspace_membership_id"), _BIGINT,
) | {"method": "text"}  # fmt: skip
_MESSAGE_TYPES = {"id": "text", "position": _BIGINT, "type": "text", "occurred_at": _BIGINT,
                  "body": "text"}  # fmt: skip
_DELIVERY_TYPES = dict.fromkeys(("endpoint_id", "position", "created_at", "next_attempt_at"),
                                _BIGINT) | {"message_id": "text", "status": "text"}  # fmt: skip


def _save_states(cursor: SqlCursor, db: SqlDatabase, states: Iterable[SessionState]) -> None:
    sessions: list[dict[str, Any]] = []
    sign_ins: list[dict[str, Any]] = []
    ended: list[int] = []
    for state in states:
        sessions.append(
            {
                "session_id": state.session_id,
                "created_at": to_ms(state.created_at),
                "updated_at": to_ms(state.updated_at),
                "active_sign_in_id": state.active_sign_in_id,
            }
        )
        for sign_in_id in state.changed:
            s = state.sign_ins[sign_in_id]
            sign_ins.append(
                {
                    "id": s.id,
                    "session_id": s.session_id,
                    "user_id": s.user_id,
                    "method": s.method,
                    "created_at": to_ms(s.created_at),
                    "expires_at": to_ms(s.expires_at),
                    "organization_membership_id": s.organization_membership_id,
                    "workspace_membership_id": s.workspace_membership_id,
                }
            )
        ended += state.ended
    insert_rows(
        cursor, db.dialect, db.table(tables.SESSIONS), _SESSION_TYPES, sessions,
        " ON CONFLICT (session_id) DO UPDATE SET updated_at = excluded.updated_at, "
        "active_sign_in_id = excluded.active_sign_in_id",
    )  # fmt: skip
    insert_rows(
        cursor, db.dialect, db.table(tables.SIGN_INS), _SIGN_IN_TYPES, sign_ins,
        " ON CONFLICT (id) DO UPDATE SET "
        "organization_membership_id = excluded.organization_membership_id, "
        "workspace_membership_id = excluded.workspace_membership_id",
    )  # fmt: skip
    if ended:  # rare (sign-ins that ended): no need for one statement
        cursor.executemany(
            f"DELETE FROM {db.table(tables.SIGN_INS)} WHERE id = %(id)s",
            [{"id": sign_in_id} for sign_in_id in ended],
        )


def _save_messages(cursor: SqlCursor, db: SqlDatabase, messages: list[Message]) -> None:
    if not messages:
        return
    insert_rows(
        cursor, db.dialect, db.table(tables.MESSAGES), _MESSAGE_TYPES,
        [vars(m) for m in messages], " ON CONFLICT (id) DO NOTHING",
    )  # fmt: skip
    cursor.execute(
        f"SELECT id, event_types, since_position FROM {db.table(tables.ENDPOINTS)} "
        "WHERE enabled = 1"
    )
    endpoints = [
        (int(r["id"]), set(json.loads(r["event_types"])), int(r["since_position"]))
        for r in cursor.fetchall()
    ]
    now = int(time.time() * 1000)
    deliveries = [
        {"endpoint_id": endpoint, "message_id": m.id, "position": m.position,
         "status": "pending", "created_at": now, "next_attempt_at": now}
        for m in messages
        for endpoint, types, since in endpoints
        if m.type in types and m.position > since
    ]  # fmt: skip
    insert_rows(
        cursor, db.dialect, db.table(tables.DELIVERIES), _DELIVERY_TYPES, deliveries,
        " ON CONFLICT (endpoint_id, message_id) DO NOTHING",
    )  # fmt: skip
