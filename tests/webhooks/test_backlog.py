"""A backlog larger than the sender's queue is delivered whole, once, within the slots.

Given a few hundred messages waiting for one endpoint and a sender whose queue holds eight
of them with three requests at a time, then rounds top the queue up until every message
is accepted once (the receiver answers 200, so nothing is sent twice), never more than three
requests are in flight, and every delivery is recorded as delivered.
"""

from __future__ import annotations

import pytest

from infrastructure.webhooks.sender import SendPolicy, WebhookSender
from tests.webhooks.receiver import Receiver, running, wait_for
from tests.webhooks.support import messages, switches, webhook_stack


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
def test_a_backlog_beyond_the_queue_arrives_whole_and_once(
    store: str, request: pytest.FixtureRequest
) -> None:
    url = str(request.getfixturevalue(f"{store}_url"))
    with running(Receiver(delay=0.01)) as receiver, webhook_stack(url) as stack:
        hooks = stack.services.webhooks
        _, secret = hooks.create_endpoint(receiver.url, None)
        receiver.secrets.append(secret)
        switches(stack, rounds=60)
        waiting = set(messages(stack))
        assert len(waiting) > 100
        policy = SendPolicy(per_endpoint=3, queue_limit=8, gather_seconds=0.01,
                            poll_seconds=0.05, allow_private=True)  # fmt: skip
        sender = WebhookSender(hooks.endpoint_store, hooks.delivery_store, policy, None)
        sender.start()
        try:
            wait_for(lambda: receiver.accepted_ids() == waiting, 120, "every message")

            def recorded() -> bool:
                rows = hooks.delivery_store.pending_summary()
                return not any(r["status"] == "pending" for r in rows)

            wait_for(recorded, 60, "every answer recorded")
        finally:
            sender.stop()
        assert sorted(receiver.received_ids()) == sorted(waiting)  # none sent twice
        assert 1 < receiver.most_at_once <= 3
        assert all(r.verified_by == [0] for r in receiver.requests)
