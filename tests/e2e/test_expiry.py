"""A sign-in's lifetime: it ends on its own, ``expires_at`` after it began."""

from __future__ import annotations

from datetime import datetime, timedelta

from tests.e2e.conftest import BuildStack
from tests.e2e.harness import Stack, sign_in_of
from tests.e2e.wire import ok, refused
from tests.helpers import ALICE, BOB

LIFETIME = timedelta(hours=1)


def short_lived(build_stack: BuildStack) -> Stack:
    """The stack with sign-ins that last an hour."""
    return build_stack(sign_in_lifetime_seconds=int(LIFETIME.total_seconds()))


def test_an_expired_sign_in_vanishes_from_the_session(build_stack: BuildStack) -> None:
    # Given Alice signed in, then Bob half an hour later, and Alice switched back to
    stack = short_lived(build_stack)
    browser = stack.browser
    alice = browser.signed_in(ALICE)
    assert (
        datetime.fromisoformat(alice["expires_at"]) - datetime.fromisoformat(alice["created_at"])
        == LIFETIME
    )
    stack.clock.advance(LIFETIME / 2)
    bob = browser.signed_in(BOB)
    ok(browser.switch_sign_in(alice["id"]))

    # When the clock reaches just before Alice's lifetime ends, she is still there
    stack.clock.advance(LIFETIME / 2 - timedelta(seconds=1))
    assert browser.session()["active_signin_id"] == alice["id"]

    # When it passes her lifetime
    stack.clock.advance(timedelta(seconds=2))
    data = browser.session()

    # Then her sign-in is gone from the list and from being active; Bob's stays
    assert [s["id"] for s in data["signins"]] == [bob["id"]]
    assert data["active_signin_id"] is None
    assert data["active_signin"] is None


def test_without_the_expired_sign_in_nothing_is_active(build_stack: BuildStack) -> None:
    # Given Alice signed in and active, and her lifetime over
    stack = short_lived(build_stack)
    browser = stack.browser
    browser.signed_in(ALICE)
    stack.clock.advance(LIFETIME + timedelta(seconds=1))

    # When the browser switches organization, or back to her sign-in
    # Then there is no active sign-in to switch for
    assert refused(browser.switch_organization(""), 400) == "NO_ACTIVE_SIGN_IN"
    assert browser.session()["signins"] == []


def test_an_account_whose_sign_in_expired_can_sign_in_again(build_stack: BuildStack) -> None:
    # Given Alice's sign-in expired
    stack = short_lived(build_stack)
    browser = stack.browser
    first = browser.signed_in(ALICE)
    stack.clock.advance(LIFETIME + timedelta(seconds=1))

    # When she signs in again
    data = ok(browser.sign_in(ALICE))

    # Then she has one new, active sign-in
    again = sign_in_of(data, ALICE)
    assert again["id"] != first["id"]
    assert data["active_signin_id"] == again["id"]
