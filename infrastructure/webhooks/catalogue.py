"""Which webhook events the session events become, and what each one's ``data`` holds.

A webhook event is computed from one stored event and the state the webhook follower keeps
(live sign-ins per session, see :mod:`infrastructure.webhooks.follower`), so every message
says exactly what happened, and only that. ``RULES`` maps an event's name to its rule: a
new kind of session event needs one line there (as remote sign-out, from a device list, has:
``"SignedOutRemotely": ending("session.signin.ended_remotely", "signed_out_remotely")``).

Data shapes follow Wacht's deployment-event examples where Wacht has the event
(``session.created``, ``session.deleted``, ``session.expired``); the sign-in level events are
ours, in the same style (``entity_id``, ``entity_type``, then the object). Ids are decimal
strings, times RFC 3339 with ``Z``. No payload holds a password, code, token or digest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from application.read_model import rfc3339

Data = dict[str, Any]
Emitted = list[tuple[str, Data]]


@dataclass
class SignInRow:
    """A live sign-in as the webhook follower keeps it."""

    id: int
    session_id: int
    user_id: int
    method: str
    created_at: datetime
    expires_at: datetime
    organization_membership_id: int | None = None
    workspace_membership_id: int | None = None

    def as_data(self) -> Data:
        """The sign-in object of the payloads."""
        return {
            "id": str(self.id),
            "session_id": str(self.session_id),
            "user_id": str(self.user_id),
            "method": self.method,
            "created_at": rfc3339(self.created_at),
            "expires_at": rfc3339(self.expires_at),
            "active_organization_membership_id": _id(self.organization_membership_id),
            "active_workspace_membership_id": _id(self.workspace_membership_id),
        }


@dataclass
class SessionState:
    """One session as the follower knows it: when it started, its live sign-ins, the active one."""

    session_id: int
    created_at: datetime
    updated_at: datetime
    active_sign_in_id: int | None = None
    sign_ins: dict[int, SignInRow] = field(default_factory=dict)
    changed: set[int] = field(default_factory=set)  # sign-ins to write back
    ended: set[int] = field(default_factory=set)  # sign-ins to delete

    def session_data(self) -> Data:
        """The session object of ``session.created`` and ``session.deleted`` (Wacht's shape)."""
        return {
            "entity_id": str(self.session_id),
            "entity_type": "session",
            "id": str(self.session_id),
            "created_at": rfc3339(self.created_at),
            "updated_at": rfc3339(self.updated_at),
            "active_signin_id": _id(self.active_sign_in_id),
            "signins": [s.as_data() for s in self.sign_ins.values()],
        }

    def sign_in_data(self, sign_in: SignInRow, **extra: Any) -> Data:
        """The payload of a sign-in level event."""
        return {"entity_id": str(sign_in.id), "entity_type": "signin", **sign_in.as_data(), **extra}


def _id(value: int | None) -> str | None:
    return None if value is None else str(value)


# Rules: (session state before the event, the event, its request context) -> events to send.
Rule = Callable[[SessionState, Any, Data | None], Emitted]


def _sign_in_added(state: SessionState, event: Any, context: Data | None) -> Emitted:
    was_empty = not state.sign_ins
    sign_in = SignInRow(
        id=event.sign_in_id,
        session_id=state.session_id,
        user_id=event.user_id,
        method=str(event.method),
        created_at=event.timestamp,
        expires_at=event.expires_at,
        organization_membership_id=event.organization_membership_id,
        workspace_membership_id=event.workspace_membership_id,
    )
    state.sign_ins[sign_in.id] = sign_in
    state.changed.add(sign_in.id)
    state.active_sign_in_id = sign_in.id
    emitted: Emitted = []
    if was_empty:
        emitted.append(("session.created", state.session_data()))
    emitted.append(("session.signin.added", state.sign_in_data(sign_in, client=context)))
    return emitted


def _switched(state: SessionState, event: Any, context: Data | None) -> Emitted:
    previous = state.active_sign_in_id
    state.active_sign_in_id = event.sign_in_id
    sign_in = state.sign_ins.get(event.sign_in_id)
    if sign_in is None:  # history older than the follower's state: say nothing rather than guess
        return []
    data = state.sign_in_data(sign_in, previous_signin_id=_id(previous), client=context)
    return [("session.signin.switched", data)]


def _membership_activated(state: SessionState, event: Any, context: Data | None) -> Emitted:
    sign_in = state.sign_ins.get(event.sign_in_id)
    if sign_in is None:
        return []
    sign_in.organization_membership_id = event.organization_membership_id
    sign_in.workspace_membership_id = event.workspace_membership_id
    state.changed.add(sign_in.id)
    kind = (
        "session.workspace.switched"
        if event.workspace_membership_id is not None
        else "session.organization.switched"
    )
    return [(kind, state.sign_in_data(sign_in, client=context))]


def ending(webhook_type: str, reason: str) -> Rule:
    """A rule for an event that ends sign-ins (``sign_in_id`` or ``sign_in_ids``): one
    ``webhook_type`` per sign-in, then ``session.expired`` or ``session.deleted`` if none is
    left live."""

    def rule(state: SessionState, event: Any, context: Data | None) -> Emitted:
        ids = list(getattr(event, "sign_in_ids", None) or [event.sign_in_id])
        emitted: Emitted = []
        for sign_in_id in ids:
            sign_in = state.sign_ins.pop(sign_in_id, None)
            if sign_in is None:
                continue
            state.ended.add(sign_in_id)
            state.changed.discard(sign_in_id)
            if state.active_sign_in_id == sign_in_id:
                state.active_sign_in_id = None
            extra: Data = {"reason": reason, "ended_at": rfc3339(event.timestamp)}
            expired_at = getattr(event, "expired_at", None)
            if expired_at is not None:
                extra["expired_at"] = rfc3339(expired_at)
            emitted.append((webhook_type, state.sign_in_data(sign_in, **extra, client=context)))
        if emitted and not state.sign_ins:
            if reason == "expired":
                expired = {
                    "entity_id": str(state.session_id),
                    "entity_type": "session",
                    "id": str(state.session_id),
                    "expired_at": rfc3339(event.timestamp),
                }
                emitted.append(("session.expired", expired))
            else:
                emitted.append(("session.deleted", state.session_data()))
        return emitted

    return rule


RULES: dict[str, Rule] = {
    "SignInCompleted": _sign_in_added,
    "ActiveSignInSwitched": _switched,
    "MembershipActivated": _membership_activated,
    "SignedOut": ending("session.signin.signed_out", "signed_out"),
    "SignedOutOfAll": ending("session.signin.signed_out", "signed_out_all"),
    "SignInExpired": ending("session.signin.expired", "expired"),
    "SignedOutRemotely": ending("session.signin.ended_remotely", "signed_out_remotely"),
}

DESCRIPTIONS: dict[str, str] = {
    "session.created": "A session got its first live sign-in (again, if it had none left).",
    "session.deleted": "Every sign-in of a session ended by signing out; the session is empty.",
    "session.expired": "The last live sign-in of a session expired.",
    "session.signin.added": "An account signed in to a session; it is now the active one.",
    "session.signin.switched": "Another live sign-in of the session became the active one.",
    "session.signin.signed_out": "A sign-in was signed out (one, or all of the session's).",
    "session.signin.expired": "A sign-in passed its lifetime or idle timeout.",
    "session.signin.ended_remotely": "The same user ended this sign-in from another browser.",
    "session.organization.switched": "The active sign-in activated an organization (or none).",
    "session.workspace.switched": "The active sign-in activated a workspace and its organization.",
}
EVENT_TYPES: tuple[str, ...] = tuple(DESCRIPTIONS)
