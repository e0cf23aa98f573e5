"""Replay re-delivers with the same ids; a new endpoint is back-filled; rotation signs twice.

Given a receiver that got a story's messages, a replay (by position, and by time window)
sends them again with the same ``webhook-id``s (its deduplicated view is unchanged); an
endpoint added afterwards gets nothing of the past until it is back-filled, then exactly the
same ids. After a secret rotation with an overlap, deliveries verify with the old and the new
secret; after one without, only with the new one.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from infrastructure.webhooks.catalogue import EVENT_TYPES
from infrastructure.webhooks.endpoints import now_ms
from infrastructure.webhooks.http import Outcome
from tests.e2e.harness import START
from tests.helpers import ALICE, BOB, CAROL
from tests.webhooks.receiver import Receiver, running, wait_for
from tests.webhooks.support import ADMIN, catch_up, every_event_story, messages, ok, webhook_stack

STORES = ["sqlite", "postgres"]


@pytest.mark.parametrize("store", STORES)
def test_replay_redelivers_the_same_ids_and_backfills_a_new_endpoint(
    store: str, request: pytest.FixtureRequest
) -> None:
    url = str(request.getfixturevalue(f"{store}_url"))
    with (
        running(Receiver()) as first,
        running(Receiver()) as late,
        webhook_stack(url) as stack,
    ):
        hooks = stack.services.webhooks
        endpoint, secret = hooks.create_endpoint(first.url, None)
        first.secrets.append(secret)
        hooks.start()
        every_event_story(stack)
        catch_up(stack)
        stored = messages(stack)
        wait_for(lambda: first.accepted_ids() == set(stored), what="the first deliveries")
        assert sorted(first.received_ids()) == sorted(stored)

        # Everything since position 0, again: same ids, the deduplicated view unchanged.
        admin = stack.open_browser()
        queued = ok(
            admin.send("POST", f"/admin/webhooks/endpoints/{endpoint.id}/replay",
                       json={"since_position": 0}, headers=ADMIN)
        )["queued"]  # fmt: skip
        assert queued == len(stored)
        wait_for(lambda: len(first.received_ids()) == 2 * len(stored), what="the replay")
        assert sorted(first.received_ids()) == sorted(list(stored) * 2)
        assert first.accepted_ids() == set(stored)
        for again in first.requests[len(stored) :]:
            assert again.verified_by == [0]
            assert again.body.decode() == stored[again.webhook_id]["body"]

        # A time window: only the messages of events inside it.
        count = hooks.replay(endpoint.id, start=START, end=START + timedelta(minutes=1))
        first_sign_in = min(m["position"] for m in stored.values())
        expected = {i for i, m in stored.items() if m["position"] == first_sign_in}
        assert {stored[i]["type"] for i in expected} == {"session.created", "session.signin.added"}
        assert count == len(expected)
        wait_for(lambda: len(first.received_ids()) == 2 * len(stored) + count, what="window")
        assert set(first.received_ids()[2 * len(stored) :]) == expected

        # An endpoint added now gets nothing of the past, until it is back-filled.
        added, secret = hooks.create_endpoint(late.url, None)
        late.secrets.append(secret)
        stack.browser.signed_in(ALICE)
        catch_up(stack)
        newest = set(messages(stack)) - set(stored)
        wait_for(lambda: late.accepted_ids() == newest, what="the new endpoint's first")
        assert hooks.replay(added.id, since_position=0) == len(stored) + len(newest)
        wait_for(lambda: late.accepted_ids() == set(messages(stack)), what="the back-fill")
        assert all(r.verified_by == [0] for r in late.requests)


@pytest.mark.parametrize("store", STORES)
def test_rotation_signs_with_both_secrets_during_the_overlap(
    store: str, request: pytest.FixtureRequest
) -> None:
    url = str(request.getfixturevalue(f"{store}_url"))
    with running(Receiver()) as receiver, webhook_stack(url) as stack:
        hooks = stack.services.webhooks
        endpoint, old = hooks.create_endpoint(receiver.url, ["session.signin.added"])
        receiver.secrets.append(old)
        hooks.start()
        b = stack.browser
        b.signed_in(ALICE)
        wait_for(lambda: len(receiver.accepted_ids()) == 1, what="the first delivery")

        admin = stack.open_browser()
        rotated = ok(
            admin.send("POST", f"/admin/webhooks/endpoints/{endpoint.id}/rotate-secret",
                       json={"overlap_seconds": 3600}, headers=ADMIN)
        )  # fmt: skip
        new = rotated["secret"]
        assert new.startswith("whsec_")
        assert new != old
        assert rotated["endpoint"]["rotation_overlap_until"] is not None
        receiver.secrets.append(new)
        b.signed_in(BOB)
        wait_for(lambda: len(receiver.accepted_ids()) == 2, what="the overlap delivery")
        during = receiver.requests[-1]
        assert during.verified_by == [0, 1]  # both secrets verify it
        assert len(during.signatures) == 2

        newest = hooks.rotate_secret(endpoint.id, 0)[1]
        receiver.secrets.append(newest)
        ok(b.sign_out())
        b.signed_in(ALICE)
        wait_for(lambda: len(receiver.accepted_ids()) == 3, what="the post-overlap delivery")
        after = receiver.requests[-1]
        assert after.verified_by == [2]
        assert len(after.signatures) == 1


@pytest.mark.parametrize("store", STORES)
def test_a_replay_during_an_attempt_is_still_owed(
    store: str, request: pytest.FixtureRequest
) -> None:
    """An answer recorded after a replay of its message does not swallow the replay."""
    url = str(request.getfixturevalue(f"{store}_url"))
    with webhook_stack(url) as stack:
        hooks = stack.services.webhooks
        endpoint = hooks.create_endpoint("https://hooks.example.com/in", ["session.created"])[0]
        stack.browser.signed_in(ALICE)
        catch_up(stack)
        store_ = hooks.delivery_store
        (claimed,) = store_.due(endpoint.id, 10, set())
        while now_ms() <= claimed.due_at:  # the replay is due at a later millisecond
            pass
        assert hooks.replay(endpoint.id, since_position=0) == 1
        store_.record([(claimed, Outcome(200, 5, None, "ok"), claimed.due_at, "192.0.2.1")])

        (delivery,) = hooks.deliveries(endpoint.id)
        assert delivery["status"] == "pending"
        assert [a["outcome"] for a in hooks.attempts(endpoint.id, claimed.message_id)] == [
            "delivered"
        ]
        (again,) = store_.due(endpoint.id, 10, set())
        assert again.message_id == claimed.message_id
        store_.record([(again, Outcome(200, 5, None, "ok"), again.due_at, "192.0.2.1")])
        assert hooks.deliveries(endpoint.id)[0]["status"] == "delivered"


@pytest.mark.parametrize("store", STORES)
def test_a_batch_of_answers_settles_each_delivery_and_the_endpoint_streak_in_order(
    store: str, request: pytest.FixtureRequest
) -> None:
    """Answers recorded together count as if recorded one by one: a success in the batch
    ends the streak, the failures after it start the next one."""
    url = str(request.getfixturevalue(f"{store}_url"))
    with webhook_stack(url) as stack:
        hooks = stack.services.webhooks
        endpoint = hooks.create_endpoint("https://hooks.example.com/in", list(EVENT_TYPES))[0]
        stack.browser.signed_in(ALICE)
        stack.browser.signed_in(BOB)
        stack.browser.signed_in(CAROL)
        catch_up(stack)
        store_ = hooks.delivery_store
        due = store_.due(endpoint.id, 10, set())
        assert len(due) >= 4
        first, second, third, fourth = due[:4]
        failed = Outcome(500, 7, "HTTP 500", "no")
        store_.record([
            (first, failed, first.due_at + 1, "192.0.2.1"),
            (second, Outcome(204, 3, None, ""), second.due_at + 2, "192.0.2.1"),
            (third, failed, third.due_at + 3, "192.0.2.1"),
            (fourth, Outcome(None, 9, "timed out", None), fourth.due_at + 4, "192.0.2.1"),
        ])  # fmt: skip

        settled = hooks.endpoint(endpoint.id)
        totals = (settled.attempts_total, settled.delivered_total, settled.failures_total)
        assert totals == (4, 1, 3)
        assert settled.failure_streak == 2
        assert settled.enabled
        statuses = {d["message_id"]: d["status"] for d in hooks.deliveries(endpoint.id)}
        assert [statuses[d.message_id] for d in (first, second, third, fourth)] == [
            "pending", "delivered", "pending", "pending",
        ]  # fmt: skip
        outcomes = [hooks.attempts(endpoint.id, d.message_id) for d in (first, second, fourth)]
        assert [[a["outcome"] for a in each] for each in outcomes] == [
            ["failed"], ["delivered"], ["failed"],
        ]  # fmt: skip
        assert outcomes[2][0]["error"] == "timed out"
