"""Every catalogue event reaches every endpoint subscribed to it, once, signed, as it happened.

Given two receivers (one subscribed to everything, one to two types) and a story through the
HTTP API that produces every event type of the catalogue, then each receiver accepts exactly
the messages of its types, each once, every request verified by ``standardwebhooks``; the
bodies say what happened (who, which sign-in, which membership) and nothing secret.
"""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from infrastructure.webhooks.catalogue import EVENT_TYPES
from infrastructure.webhooks.examples import example_bodies
from tests.e2e.harness import Browser
from tests.helpers import ALICE, BOB, CAROL, race
from tests.webhooks.receiver import Receiver, running, wait_for
from tests.webhooks.support import (
    ADMIN,
    catch_up,
    every_event_story,
    messages,
    ok,
    webhook_stack,
)

SUBSET = ["session.created", "session.signin.switched"]


def _shape(value: object) -> object:
    """The keys (recursively) of a body, to compare with the catalogue's example."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shape(v) for v in value[:1]]
    return None


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
def test_every_catalogue_event_arrives_once_per_subscribed_endpoint(
    store: str, request: pytest.FixtureRequest
) -> None:
    url = str(request.getfixturevalue(f"{store}_url"))
    with (
        running(Receiver()) as everything,
        running(Receiver()) as some,
        webhook_stack(url) as stack,
    ):
        admin = stack.open_browser()
        created = ok(
            admin.send("POST", "/admin/webhooks/endpoints", json={"url": everything.url},
                       headers=ADMIN)
        )  # fmt: skip
        everything.secrets.append(created["secret"])
        created = ok(
            admin.send("POST", "/admin/webhooks/endpoints",
                       json={"url": some.url, "event_types": SUBSET}, headers=ADMIN)
        )  # fmt: skip
        some.secrets.append(created["secret"])
        stack.services.webhooks.start()

        every_event_story(stack)
        catch_up(stack)

        stored = messages(stack)
        assert {m["type"] for m in stored.values()} == set(EVENT_TYPES)
        subset = {i for i, m in stored.items() if m["type"] in SUBSET}
        wait_for(lambda: everything.accepted_ids() == set(stored), what="every message")
        wait_for(lambda: some.accepted_ids() == subset, what="the subscribed messages")

        for receiver, expected in ((everything, set(stored)), (some, subset)):
            ids = receiver.received_ids()
            assert sorted(ids) == sorted(expected)  # once each: a healthy receiver, no repeats
            for received in receiver.requests:
                assert received.verified_by == [0]
                assert received.body.decode() == stored[received.webhook_id]["body"]
        # Exactly what happened, in the catalogue's shapes.
        examples = example_bodies()
        bodies = [json.loads(m["body"]) for m in stored.values()]
        for body in bodies:
            assert _shape(body) == _shape(examples[body["type"]]), body["type"]
        added = [b["data"]["user_id"] for b in bodies if b["type"] == "session.signin.added"]
        assert sorted(added) == sorted([ALICE[2], BOB[2], CAROL[2], CAROL[2]])  # Carol on two
        text = " ".join(m["body"] for m in stored.values())
        for secret in (ALICE[1], BOB[1], CAROL[1], stack.browser.token or "?"):
            assert secret not in text


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
def test_messages_are_created_once_whoever_catches_up(
    store: str, request: pytest.FixtureRequest
) -> None:
    """Two followers (the worker and an operator's catch-up) race: no message twice."""
    url = str(request.getfixturevalue(f"{store}_url"))
    with webhook_stack(url) as stack, webhook_stack(url) as other:
        every_event_story(stack)
        projectors = [stack.services.webhooks.projector, other.services.webhooks.projector]

        def follow(index: int) -> None:
            projectors[index].catch_up()

        assert race(2, follow, timeout=60) == []
        stored = messages(stack)
        positions = {(m["position"], m["id"].rsplit("_", 1)[1]) for m in stored.values()}
        assert len(positions) == len(stored)
        assert stack.services.webhooks.status()["lag"] == 0


@pytest.mark.parametrize(("mode", "expected"), [
    ("truncated", "203.0.113.0"), ("whole", "203.0.113.77"), ("hashed", "hmac:"),
])  # fmt: skip
def test_payloads_carry_the_request_context_as_the_audit_settings_keep_it(
    sqlite_url: str, mode: str, expected: str
) -> None:
    with webhook_stack(sqlite_url, audit_client_address=mode) as stack:
        client = TestClient(
            stack.app, base_url="https://testserver", client=("203.0.113.77", 50000),
            headers={"User-Agent": "HookTest/1.0", "X-Request-Id": "req-webhook-0001"},
        )  # fmt: skip
        with client:
            Browser(client).signed_in(ALICE)
        catch_up(stack)
        (added,) = [
            json.loads(m["body"])
            for m in messages(stack).values()
            if m["type"] == "session.signin.added"
        ]
        context = added["data"]["client"]
        if mode == "hashed":
            assert context["client_address"].startswith(expected)
        else:
            assert context["client_address"] == expected
        assert ("203.0.113.77" in json.dumps(added)) == (mode == "whole")
        assert context["user_agent"] == "HookTest/1.0"
        assert context["request_id"] == "req-webhook-0001"
