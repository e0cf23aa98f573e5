"""The served catalogue: each event type, what it means, and an example body.

The examples are made by the same rules that make real messages, from a fixed little story
(a sign-in, another, a switch, an organization and a workspace, sign-outs, an expiry), so
they cannot drift from what receivers get. docs/webhooks.md shows the same bodies (a test
compares them).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from application.read_model import rfc3339
from infrastructure.webhooks.catalogue import DESCRIPTIONS, RULES, SessionState
from infrastructure.webhooks.follower import message_body

SESSION, ALICE_SIGN_IN, BOB_SIGN_IN = 7001, 7101, 7102
ALICE, BOB = 100000000000000001, 100000000000000002
START = datetime(2026, 3, 4, 10, 0, tzinfo=UTC)
CLIENT = {"client_address": "203.0.113.0", "user_agent": "Mozilla/5.0", "request_id": "req-1234"}


def _story() -> list[tuple[str, SimpleNamespace]]:
    t = [START + timedelta(minutes=i) for i in range(8)]
    lifetime = timedelta(days=30)

    def added(sign_in: int, user: int, at: datetime) -> SimpleNamespace:
        return SimpleNamespace(
            sign_in_id=sign_in, user_id=user, method="plain_email", timestamp=at,
            expires_at=at + lifetime, organization_membership_id=None,
            workspace_membership_id=None,
        )  # fmt: skip

    return [
        ("SignInCompleted", added(ALICE_SIGN_IN, ALICE, t[0])),
        ("SignInCompleted", added(BOB_SIGN_IN, BOB, t[1])),
        ("ActiveSignInSwitched", SimpleNamespace(sign_in_id=ALICE_SIGN_IN, timestamp=t[2])),
        ("MembershipActivated", SimpleNamespace(
            sign_in_id=ALICE_SIGN_IN, organization_membership_id=300000000000000001,
            workspace_membership_id=None, timestamp=t[3])),
        ("MembershipActivated", SimpleNamespace(
            sign_in_id=ALICE_SIGN_IN, organization_membership_id=300000000000000001,
            workspace_membership_id=500000000000000001, timestamp=t[4])),
        ("SignedOut", SimpleNamespace(sign_in_id=BOB_SIGN_IN, timestamp=t[5])),
        ("SignedOutOfAll", SimpleNamespace(sign_in_ids=[ALICE_SIGN_IN], timestamp=t[6])),
        ("SignInCompleted", added(BOB_SIGN_IN + 1, BOB, t[6])),
        ("SignInCompleted", added(ALICE_SIGN_IN + 1, ALICE, t[6])),
        ("SignedOutRemotely", SimpleNamespace(
            sign_in_id=ALICE_SIGN_IN + 1, by_session_id=SESSION + 1,
            by_sign_in_id=ALICE_SIGN_IN + 2, timestamp=t[7])),
        ("SignInExpired", SimpleNamespace(
            sign_in_id=BOB_SIGN_IN + 1, expired_at=t[7], timestamp=t[7])),
    ]  # fmt: skip


def example_bodies() -> dict[str, dict[str, Any]]:
    """The first body the story produces for each event type."""
    state = SessionState(SESSION, START - timedelta(minutes=5), START)
    found: dict[str, dict[str, Any]] = {}
    for name, event in _story():
        state.updated_at = event.timestamp
        for kind, data in RULES[name](state, event, CLIENT):
            body = message_body(kind, rfc3339(event.timestamp), data)
            found.setdefault(kind, json.loads(body))
    return found


def catalogue() -> list[dict[str, Any]]:
    """Every event type with its description and an example body."""
    bodies = example_bodies()
    return [
        {"type": kind, "description": text, "example": bodies[kind]}
        for kind, text in DESCRIPTIONS.items()
    ]
