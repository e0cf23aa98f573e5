"""What the webhook tests share: fast retry settings, a stack with delivery, a story that
produces every catalogue event, and reading the webhook tables."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from tests.e2e.harness import Browser, Stack, open_stack
from tests.helpers import ACME, ACME_WEB, ALICE, BOB, CAROL

WEBHOOK_KEY = "test-webhook-key-kept-outside-the-store"
ADMIN_TOKEN = "webhook-admin-token-0123456789"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

# Fast and small, so retries, failures and disabling happen within a test.
FAST: dict[str, Any] = {
    "webhook_key": WEBHOOK_KEY,
    "webhook_allow_private_addresses": True,
    "webhook_timeout_seconds": 10.0,  # generous: slowness must not turn answers into retries
    "webhook_max_attempts": 5,
    "webhook_retry_base_seconds": 0.05,
    "webhook_retry_max_seconds": 0.4,
    "webhook_disable_after_failures": 6,
    "webhook_disable_after_seconds": 0,
    "webhook_poll_seconds": 0.05,
    "admin_token": ADMIN_TOKEN,
}


@contextmanager
def webhook_stack(url: str, **overrides: Any) -> Iterator[Stack]:
    """A stack on ``url`` with the fast webhook settings (the worker not started yet)."""
    with open_stack(url, **{**FAST, **overrides}) as stack:
        yield stack


def ok(response: Any) -> Any:
    """The ``data`` of a 2xx answer."""
    assert 200 <= response.status_code < 300, response.text
    return response.json()["data"]


def every_event_story(stack: Stack, browser: Browser | None = None) -> None:
    """Sign-ins, a switch, an organization, a workspace, sign-outs (one from another
    browser), an expiry: every type."""
    b = browser or stack.browser

    def step() -> None:
        stack.clock.advance(timedelta(minutes=1))

    alice = b.signed_in(ALICE)
    step()
    b.signed_in(BOB)
    step()
    ok(b.switch_sign_in(alice["id"]))
    step()
    ok(b.switch_organization(ACME))
    step()
    ok(b.switch_workspace(ACME_WEB))
    step()
    bob = next(s for s in b.session()["signins"] if s["user_id"] == BOB[2])
    ok(b.sign_out(bob["id"]))
    step()
    ok(b.sign_out())
    step()
    b.signed_in(CAROL)
    step()
    phone = stack.open_browser()
    on_phone = phone.signed_in(CAROL)
    ok(b.send("POST", f"/me/signins/{on_phone['id']}/signout"))  # ended from this browser
    step()
    lifetime = stack.services.settings.sign_in_lifetime_seconds
    stack.clock.advance(timedelta(seconds=lifetime + 60))
    assert b.session()["signins"] == []  # the read records the expiry


def switches(stack: Stack, rounds: int) -> str:
    """Alice and Bob sign in, then switch back and forth ``rounds`` times; Alice's sign-in id.
    Every message the log calls for is made before it returns."""
    b = stack.browser
    alice = b.signed_in(ALICE)
    b.signed_in(BOB)
    for _ in range(rounds):
        ok(b.switch_sign_in(alice["id"]))
        bob = next(s for s in b.session()["signins"] if s["user_id"] == BOB[2])
        ok(b.switch_sign_in(bob["id"]))
    catch_up(stack)
    return str(alice["id"])


def messages(stack: Stack) -> dict[str, dict[str, Any]]:
    """Every stored message by id: position, type, body."""
    db = stack.services.views
    with db.transaction(commit=False) as cursor:
        cursor.execute(f"SELECT id, position, type, body FROM {db.table('webhook_messages')}")
        return {str(r["id"]): dict(r) for r in cursor.fetchall()}


def catch_up(stack: Stack) -> None:
    """Create every message the log calls for (as the worker would)."""
    stack.services.webhooks.projector.catch_up()
