"""Under a stream of events the projection worker catches up once per interval, not per event.

Given a worker gathering for half a second, and switches written one by one, spaced out so
that each is notified on its own, then the worker catches up at most once per interval
(plus the catch-up at its start and the first after the quiet spell), far fewer times than
there were events, and still reaches the head. The bound is computed from how long the
stream took, so a slow machine changes the bound, not the verdict.
"""

from __future__ import annotations

import time

import pytest

from infrastructure.projections.worker import ProjectionWorker
from tests.e2e.harness import open_stack
from tests.helpers import ALICE, BOB

GATHER = 0.5
SWITCHES = 30


class CountingWorker(ProjectionWorker):
    """The real worker, counting its catch-ups."""

    catch_ups = 0

    def catch_up(self) -> int:
        self.catch_ups += 1
        return super().catch_up()


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
def test_a_stream_of_events_is_caught_up_once_per_interval(
    store: str, request: pytest.FixtureRequest
) -> None:
    url = str(request.getfixturevalue(f"{store}_url"))
    with open_stack(url) as stack:
        services = stack.services
        browser = stack.browser
        alice = browser.signed_in(ALICE)
        bob = browser.signed_in(BOB)
        analytics = services.projector("analytics")
        worker = CountingWorker(services.sessions, [analytics], None, gather_seconds=GATHER)
        worker.start()
        try:
            started = time.monotonic()
            for n in range(SWITCHES):
                response = browser.switch_sign_in((alice if n % 2 else bob)["id"])
                assert response.status_code == 200, response.text
                time.sleep(0.03)
            head = services.sessions.recorder.max_notification_id()
            deadline = time.monotonic() + 30
            while analytics.position() != head:
                assert time.monotonic() < deadline, "the worker did not reach the head"
                time.sleep(0.01)
            took = time.monotonic() - started
        finally:
            worker.stop()
        # One at start, one at once after the quiet spell, then one per interval.
        assert worker.catch_ups <= 2 + int(took / GATHER) + 1
        assert worker.catch_ups < SWITCHES / 2
