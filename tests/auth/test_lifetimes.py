"""How long sign-ins live: an absolute lifetime, an idle timeout kept off by use, a maximum."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from tests.auth.conftest import BuildStack
from tests.auth.mailbox import Mailbox
from tests.auth.support import (
    names,
    open_attempt,
    prepare,
    session_events,
    signed_in_by_code,
    start_code_sign_in,
    verify,
)
from tests.e2e.harness import Browser, Json, Stack
from tests.e2e.wire import ok, refused
from tests.helpers import ALICE, BOB, CAROL

pytestmark = pytest.mark.slow  # a real SMTP server per test

MINUTE = timedelta(minutes=1)
IDLE = timedelta(minutes=10)


def at(timestamp: str) -> datetime:
    """A wire timestamp as a datetime."""
    return datetime.fromisoformat(timestamp)


def expiries(stack: Stack, session_id: str) -> list[tuple[int, datetime]]:
    """(sign-in id, expired at) of every SignInExpired the session recorded."""
    return [
        (e.sign_in_id, e.expired_at)
        for e in session_events(stack.services, session_id)
        if type(e).__name__ == "SignInExpired"
    ]


def activity_count(stack: Stack, session_id: str) -> int:
    """How many SignInActivityNoted events (stored as SignInActive) the session recorded."""
    return names(session_events(stack.services, session_id)).count("SignInActivityNoted")


def idle_stack(build_stack: BuildStack) -> Stack:
    """Sign-ins that end after ten idle minutes; reading notes activity once a minute."""
    return build_stack(
        sign_in_idle_timeout_seconds=int(IDLE.total_seconds()),
        activity_resolution_seconds=int(MINUTE.total_seconds()),
    )


def test_the_absolute_lifetime_ends_a_sign_in_in_constant_use(build_stack: BuildStack) -> None:
    # Given sign-ins that last an hour and idle out after 30 minutes, and Alice signed in
    stack = build_stack(
        sign_in_lifetime_seconds=3600,
        sign_in_idle_timeout_seconds=1800,
        activity_resolution_seconds=60,
    )
    browser = stack.browser
    alice = browser.signed_in(ALICE)
    assert at(alice["expires_at"]) - at(alice["created_at"]) == timedelta(hours=1)

    # When the browser reads the session every 20 minutes, up to a second before the hour
    for step in (timedelta(minutes=20), timedelta(minutes=20), timedelta(seconds=20 * 60 - 1)):
        stack.clock.advance(step)
        assert browser.session()["active_signin_id"] == alice["id"]

    # When the hour is up
    stack.clock.advance(timedelta(seconds=1))
    data = browser.session()

    # Then she is gone, an expiry at her expires_at is recorded, and no token is issued
    assert data["signins"] == []
    assert data["active_signin_id"] is None
    assert expiries(stack, data["id"]) == [(int(alice["id"]), at(alice["expires_at"]))]
    assert refused(browser.send("GET", "/session/token"), 400) == "NO_ACTIVE_SIGN_IN"


def test_an_idle_sign_in_vanishes_and_its_expiry_is_recorded(
    build_stack: BuildStack, mailbox: Mailbox
) -> None:
    # Given Alice signed in by emailed code, sign-ins idling out after ten minutes
    stack = idle_stack(build_stack)
    browser = stack.browser
    data = signed_in_by_code(browser, mailbox, ALICE)
    alice = data["active_signin"]
    signed_in_at = at(alice["created_at"])

    # When nothing happens for a second under ten minutes, she is still there
    stack.clock.advance(IDLE - timedelta(seconds=1))
    assert browser.session()["active_signin_id"] == alice["id"]

    # When nothing happens for ten minutes since that read
    stack.clock.advance(IDLE)
    data = browser.session()

    # Then she has vanished, and a SignInExpired records when she idled out
    assert data["signins"] == []
    assert data["active_signin"] is None
    last_read = signed_in_at + IDLE - timedelta(seconds=1)
    assert expiries(stack, data["id"]) == [(int(alice["id"]), last_read + IDLE)]

    # And her sign-in cannot be switched to, but she can sign in again
    assert refused(browser.switch_sign_in(alice["id"]), 400) == "INVALID_SIGN_IN_ID"
    again = browser.signed_in(ALICE)
    assert again["id"] != alice["id"]


def test_reading_the_session_keeps_it_alive_noting_activity_once_a_minute(
    build_stack: BuildStack,
) -> None:
    # Given Alice signed in, sign-ins idling out after ten minutes
    stack = idle_stack(build_stack)
    browser = stack.browser
    alice = browser.signed_in(ALICE)
    session_id = browser.session()["id"]
    signed_in_at = at(alice["created_at"])

    # When the browser reads the session many times within the first minute
    events = stack.events_recorded()
    for _ in range(5):
        stack.clock.advance(timedelta(seconds=11))
        browser.session()

    # Then no activity is recorded: nothing at all is written
    assert stack.events_recorded() == events
    assert activity_count(stack, session_id) == 0

    # When it reads once the minute is up, then twice more within the next minute
    stack.clock.advance(timedelta(seconds=5))
    data = browser.session()
    for _ in range(2):
        stack.clock.advance(timedelta(seconds=20))
        browser.session()

    # Then one SignInActivityNoted is recorded, and the sign-in was last active at that read
    assert activity_count(stack, session_id) == 1
    assert at(data["active_signin"]["last_active_at"]) == signed_in_at + MINUTE

    # When reads come every nine minutes for an hour
    for _ in range(7):
        stack.clock.advance(timedelta(minutes=9))
        assert browser.session()["active_signin_id"] == alice["id"]

    # Then Alice is still signed in, one activity noted per read
    assert activity_count(stack, session_id) == 1 + 7
    assert expiries(stack, session_id) == []


def test_reading_keeps_only_the_active_sign_in_alive(build_stack: BuildStack) -> None:
    # Given Alice, then Bob signed in (Bob active), sign-ins idling out after ten minutes
    stack = idle_stack(build_stack)
    browser = stack.browser
    alice = browser.signed_in(ALICE)
    stack.clock.advance(MINUTE)
    bob = browser.signed_in(BOB)

    # When the browser reads the session every five minutes for 15 minutes
    for _ in range(3):
        stack.clock.advance(timedelta(minutes=5))
        data = browser.session()

    # Then Bob, in use, is still there; Alice, idle, expired ten minutes after she signed in
    assert [s["id"] for s in data["signins"]] == [bob["id"]]
    assert expiries(stack, data["id"]) == [(int(alice["id"]), at(alice["created_at"]) + IDLE)]


def test_switching_to_a_sign_in_counts_as_using_it(build_stack: BuildStack) -> None:
    # Given Alice, then Bob signed in (Bob active)
    stack = idle_stack(build_stack)
    browser = stack.browser
    alice = browser.signed_in(ALICE)
    bob = browser.signed_in(BOB)

    # When nine minutes later the browser switches to Alice, and reads for nine more minutes
    stack.clock.advance(timedelta(minutes=9))
    ok(browser.switch_sign_in(alice["id"]))
    stack.clock.advance(timedelta(minutes=9))
    data = browser.session()

    # Then Alice is still there and Bob idled out
    assert [s["id"] for s in data["signins"]] == [alice["id"]]
    assert [sign_in_id for sign_in_id, _ in expiries(stack, data["id"])] == [int(bob["id"])]


def test_an_idle_sign_in_gets_no_token(build_stack: BuildStack) -> None:
    # Given Alice signed in, and idle for longer than the idle timeout
    stack = idle_stack(build_stack)
    browser = stack.browser
    browser.signed_in(ALICE)
    stack.clock.advance(IDLE + timedelta(seconds=1))

    # When the browser asks for a token before anything else
    response = browser.send("GET", "/session/token")

    # Then there is no active sign-in to issue it for
    assert refused(response, 400) == "NO_ACTIVE_SIGN_IN"


def _code_attempt(browser: Browser, email: str) -> tuple[str, Json]:
    started = start_code_sign_in(browser, email)
    return open_attempt(ok(started))["id"], ok(started)


def test_a_code_cannot_exceed_the_maximum_of_sign_ins(
    build_stack: BuildStack, mailbox: Mailbox
) -> None:
    # Given sessions of at most two sign-ins, Alice signed in, and Carol's code on its way
    stack = build_stack(max_sign_ins=2)
    browser = stack.browser
    browser.signed_in(ALICE)
    attempt_id, _ = _code_attempt(browser, CAROL[0])
    ok(prepare(browser, attempt_id))
    code = mailbox.next_code(CAROL[0])

    # When Bob signs in meanwhile, filling the session, and Carol's code is sent
    bob = browser.signed_in(BOB)
    response = verify(browser, attempt_id, code)

    # Then it is 400 MAX_SIGN_INS_REACHED, and the session still holds two sign-ins
    assert refused(response, 400) == "MAX_SIGN_INS_REACHED"
    assert len(browser.session()["signins"]) == 2

    # When Bob signs out, the same code brings Carol in
    ok(browser.sign_out(bob["id"]))
    data = ok(verify(browser, attempt_id, code))
    assert sorted(s["user_id"] for s in data["signins"]) == sorted([ALICE[2], CAROL[2]])


def test_a_full_session_cannot_add_an_account_by_code(
    build_stack: BuildStack, mailbox: Mailbox
) -> None:
    # Given a session holding its maximum of two sign-ins
    stack = build_stack(max_sign_ins=2)
    browser = stack.browser
    browser.signed_in(ALICE)
    browser.signed_in(BOB)

    # When Carol tries to sign in by code, as far as she gets
    started = start_code_sign_in(browser, CAROL[0])
    if started.status_code == 200:
        attempt_id = open_attempt(started.json()["data"])["id"]
        ok(prepare(browser, attempt_id))
        final = verify(browser, attempt_id, mailbox.next_code(CAROL[0]))
    else:
        final = started

    # Then she is refused with MAX_SIGN_INS_REACHED, and two sign-ins remain
    assert refused(final, 400) == "MAX_SIGN_INS_REACHED"
    assert [s["user_id"] for s in browser.session()["signins"]] == [ALICE[2], BOB[2]]


def test_a_code_cannot_sign_in_an_account_twice(stack: Stack, mailbox: Mailbox) -> None:
    # Given Alice's code on its way, and then Alice signed in by password
    browser = stack.browser
    attempt_id, _ = _code_attempt(browser, ALICE[0])
    ok(prepare(browser, attempt_id))
    code = mailbox.next_code(ALICE[0])
    browser.signed_in(ALICE)

    # When the code is sent
    # Then it is 400 USER_ALREADY_SIGNED_IN and she holds one sign-in
    assert refused(verify(browser, attempt_id, code), 400) == "USER_ALREADY_SIGNED_IN"
    assert [s["user_id"] for s in browser.session()["signins"]] == [ALICE[2]]
