"""Failures: retries with growing gaps, giving up, disabling a dead endpoint, isolation.

Retry timings are the fast test settings; nothing asserts how long anything took. The gaps
are read from what the service recorded (each failed attempt's scheduled next attempt,
counted from when its answer came).
"""

from __future__ import annotations

import itertools

import pytest

from tests.helpers import ALICE
from tests.webhooks.receiver import Receiver, running, wait_for
from tests.webhooks.support import ADMIN, catch_up, messages, ok, switches, webhook_stack

STORES = ["sqlite", "postgres"]


def _url(store: str, request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(f"{store}_url"))


@pytest.mark.parametrize("store", STORES)
def test_a_failing_receiver_gets_retries_with_growing_gaps_then_succeeds(
    store: str, request: pytest.FixtureRequest
) -> None:
    with running(Receiver(fail_first=3)) as receiver, webhook_stack(_url(store, request)) as stack:
        hooks = stack.services.webhooks
        endpoint, secret = hooks.create_endpoint(receiver.url, ["session.created"])
        receiver.secrets.append(secret)
        hooks.start()
        stack.browser.signed_in(ALICE)
        catch_up(stack)
        (message_id,) = [i for i, m in messages(stack).items() if m["type"] == "session.created"]

        wait_for(lambda: receiver.accepted_ids() == {message_id}, what="the retried delivery")
        wait_for(lambda: hooks.deliveries(endpoint.id)[0]["status"] == "delivered")

        attempts = hooks.attempts(endpoint.id, message_id)
        assert [a["outcome"] for a in attempts] == ["failed"] * 3 + ["delivered"]
        assert [a["status_code"] for a in attempts] == [500, 500, 500, 200]
        assert all(a["response"] for a in attempts)  # the start of each answer is kept
        gaps = [
            a["next_attempt_at_ms"] - a["attempted_at_ms"] - a["latency_ms"] for a in attempts[:3]
        ]
        assert gaps == sorted(gaps), gaps
        assert gaps[-1] > gaps[0], gaps
        # Each attempt was made no earlier than scheduled.
        for failed, following in itertools.pairwise(attempts):
            assert following["attempted_at_ms"] >= failed["next_attempt_at_ms"]
        assert receiver.received_ids() == [message_id] * 4
        assert all(r.verified_by == [0] for r in receiver.requests)


@pytest.mark.parametrize("store", STORES)
def test_a_dead_endpoint_is_disabled_while_a_healthy_one_keeps_receiving(
    store: str, request: pytest.FixtureRequest
) -> None:
    with (
        running(Receiver(status=503)) as dead,
        running(Receiver()) as healthy,
        webhook_stack(_url(store, request)) as stack,
    ):
        hooks = stack.services.webhooks
        dead_endpoint, secret = hooks.create_endpoint(dead.url, None)
        dead.secrets.append(secret)
        healthy_endpoint, secret = hooks.create_endpoint(healthy.url, None)
        healthy.secrets.append(secret)
        hooks.start()
        alice = switches(stack, 3)
        stored = set(messages(stack))

        wait_for(lambda: not hooks.endpoint(dead_endpoint.id).enabled, what="the disable")
        wait_for(lambda: healthy.accepted_ids() == stored, what="the healthy deliveries")
        disabled = hooks.endpoint(dead_endpoint.id)
        assert disabled.disabled_at is not None
        assert disabled.disabled_reason is not None
        assert "HTTP 503" in disabled.disabled_reason
        assert disabled.failure_streak >= 6
        assert hooks.endpoint(healthy_endpoint.id).enabled
        # What happens while it is disabled is not sent to it; the healthy one still receives.
        ok(stack.browser.switch_sign_in(alice))
        catch_up(stack)
        later = set(messages(stack)) - stored
        wait_for(lambda: later <= healthy.accepted_ids(), what="the new message")
        assert later
        assert not later & set(dead.received_ids())
        assert not later & {d["message_id"] for d in hooks.deliveries(dead_endpoint.id)}

        status = ok(stack.browser.send("GET", "/health"))["webhooks"]
        assert status["disabled_endpoints"] == 1
        metrics = stack.browser.send("GET", "/metrics").text
        assert "session_ledger_webhook_disabled_endpoints 1.0" in metrics
        assert f'session_ledger_webhook_endpoint_enabled{{endpoint="{dead_endpoint.id}"}} 0.0' in (
            metrics
        )

        # Re-enabled (by the admin API), it is tried again; fixed, it receives.
        dead.status = 200
        admin = stack.open_browser()
        enabled = ok(
            admin.send("PATCH", f"/admin/webhooks/endpoints/{dead_endpoint.id}",
                       json={"enabled": True}, headers=ADMIN)
        )["endpoint"]  # fmt: skip
        assert enabled["enabled"]
        assert enabled["disabled_at"] is None
        assert enabled["failure_streak"] == 0
        pending = {d["message_id"] for d in hooks.deliveries(dead_endpoint.id, "pending")}
        wait_for(lambda: pending <= dead.accepted_ids(), what="deliveries after re-enabling")


@pytest.mark.parametrize("store", STORES)
def test_a_hanging_endpoint_delays_no_other(store: str, request: pytest.FixtureRequest) -> None:
    """A receiver that never answers holds only its own slots; the healthy one gets
    everything while the hanging one's attempts are still unanswered."""
    with (
        running(Receiver(hang=True)) as hanging,
        running(Receiver()) as healthy,
        webhook_stack(
            _url(store, request), webhook_timeout_seconds=30, webhook_concurrency_per_endpoint=4
        ) as stack,
    ):
        hooks = stack.services.webhooks
        hung = hooks.create_endpoint(hanging.url, None)[0]
        healthy.secrets.append(hooks.create_endpoint(healthy.url, None)[1])
        hooks.start()
        switches(stack, 4)
        stored = set(messages(stack))
        wait_for(lambda: healthy.accepted_ids() == stored, what="the healthy deliveries")
        # Meanwhile the hanging receiver holds its (per-endpoint) slots, and none answered.
        slots = stack.services.settings.webhook_concurrency_per_endpoint
        wait_for(lambda: len(hanging.requests) == slots, what="the hanging slots")
        assert hooks.attempts(hung.id, hanging.requests[0].webhook_id) == []
        assert len(hooks.deliveries(hung.id, "pending")) == len(stored)
