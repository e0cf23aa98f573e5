"""Abuse: rate limits (per address, email, attempt), proxies, cross-site POSTs, request ids."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.auth.conftest import BuildStack
from tests.auth.mailbox import Mailbox
from tests.auth.support import (
    UNKNOWN_EMAIL,
    prepare,
    sign_up,
    start_code_sign_in,
    started_attempt,
    verify,
    wrong,
)
from tests.e2e.harness import Browser, Stack, User
from tests.e2e.wire import ok, refused, session_cookie
from tests.helpers import ACME, ALICE, BOB, CAROL

pytestmark = pytest.mark.slow  # a real SMTP server per test

WINDOW = 600
EVIL = "https://evil.example"
NEW_USER = {
    "first_name": "Erin",
    "last_name": "Eastwood",
    "email": "erin@example.com",
    "password": "erin-passphrase",
}


@contextmanager
def browser_at(stack: Stack, address: str) -> Iterator[Browser]:
    """A browser whose connections come from ``address``."""
    client = TestClient(stack.app, base_url="https://testserver", client=(address, 50000))
    with client:
        yield Browser(client)


def limited(response: httpx.Response) -> int:
    """Assert a 429 RATE_LIMITED envelope; its Retry-After in seconds."""
    assert refused(response, 429) == "RATE_LIMITED"
    retry_after = response.headers.get("retry-after", "")
    assert retry_after.isdigit(), response.headers
    seconds = int(retry_after)
    assert 1 <= seconds <= WINDOW
    return seconds


def wrong_password(browser: Browser, user: User, **headers: str) -> httpx.Response:
    """A plain_email sign-in with a wrong password."""
    form = {"email": user[0], "password": "not-the-password", "strategy": "plain_email"}
    return browser.send("POST", "/auth/signin", data=form, headers=headers)


def test_sign_ins_from_one_address_are_limited(build_stack: BuildStack) -> None:
    # Given at most three sign-in attempts per address and window
    stack = build_stack(rate_limit_sign_ins_per_address=3)
    browser = stack.browser

    # When one address tries three accounts with wrong passwords
    for user in (ALICE, BOB, CAROL):
        assert refused(wrong_password(browser, user), 400) == "INVALID_CREDENTIALS"
    events = stack.events_recorded()

    # Then a fourth attempt, even with the right password or by code, is 429 with Retry-After
    retry_after = limited(browser.sign_in(ALICE))
    limited(start_code_sign_in(browser, BOB[0]))
    assert stack.events_recorded() == events
    assert browser.session()["signins"] == []

    # And another address is not affected
    with browser_at(stack, "198.51.100.20") as elsewhere:
        ok(elsewhere.sign_in(ALICE))

    # When the Retry-After has passed, the first address may try again
    stack.clock.advance(timedelta(seconds=retry_after))
    ok(browser.sign_in(ALICE))


def test_an_attacker_elsewhere_cannot_lock_the_owner_out(stack: Stack) -> None:
    # Given default limits, and wrong passwords for Alice from 31 addresses, and an email
    # without an account tried as often
    for n in range(31):
        with browser_at(stack, f"203.0.113.{n}") as attacker:
            assert refused(wrong_password(attacker, ALICE), 400) == "INVALID_CREDENTIALS"
            wrong_password(attacker, (UNKNOWN_EMAIL, "", ""))

    # When Alice signs in from an address that never failed, by password and by code
    # Then it works (fixed per-email counts used to refuse her until the window ended)
    with browser_at(stack, "198.51.100.20") as owner:
        ok(owner.sign_in(ALICE))
    with browser_at(stack, "198.51.100.21") as owner:
        ok(start_code_sign_in(owner, ALICE[0]))
        ok(start_code_sign_in(owner, UNKNOWN_EMAIL))


def test_one_address_guessing_at_one_account_is_refused_for_that_account(
    build_stack: BuildStack,
) -> None:
    # Given at most three wrong passwords per account and address
    stack = build_stack(rate_limit_failures_per_account_and_address=3)
    browser = stack.browser

    # When one address guesses Alice's password three times, however the email is spelt
    for email in (ALICE[0], ALICE[0].upper(), f" {ALICE[0]} "):
        assert refused(wrong_password(browser, (email, "", "")), 400) == "INVALID_CREDENTIALS"

    # Then its fourth try at Alice, even the right password, is 429 and changes nothing
    events = stack.events_recorded()
    retry_after = limited(browser.sign_in(ALICE))
    assert stack.events_recorded() == events
    # while the same address may still sign Bob in, and Alice herself, elsewhere, is fine
    ok(browser.sign_in(BOB))
    with browser_at(stack, "198.51.100.20") as owner:
        ok(owner.sign_in(ALICE))

    # When the Retry-After has passed (the oldest failure left the window), it may try again
    stack.clock.advance(timedelta(seconds=retry_after))
    ok(browser.sign_in(ALICE))


def test_sustained_guessing_from_many_addresses_slows_the_account_not_its_owner(
    build_stack: BuildStack,
) -> None:
    # Given a cool-down after three failures for one account
    stack = build_stack(rate_limit_account_failures_before_cool_down=3)

    with (
        browser_at(stack, "203.0.113.1") as first,
        browser_at(stack, "203.0.113.2") as second,
        browser_at(stack, "203.0.113.3") as third,
    ):
        # When three addresses each guess Alice's password once (the account is under attack)
        for attacker in (first, second, third):
            assert refused(wrong_password(attacker, ALICE), 400) == "INVALID_CREDENTIALS"

        # Then an address that failed before must wait, right password or not
        delays = [limited(first.sign_in(ALICE))]
        limited(wrong_password(second, ALICE))
        # and, each time it waited and failed again, it waits longer
        for attacker in (second, third, first):
            stack.clock.advance(timedelta(seconds=delays[-1]))
            assert refused(wrong_password(attacker, ALICE), 400) == "INVALID_CREDENTIALS"
            delays.append(limited(wrong_password(attacker, ALICE)))
        assert delays == sorted(delays)
        assert delays[-1] > delays[0]

    # While Alice, from an address with no failures, signs in at once
    with browser_at(stack, "198.51.100.20") as owner:
        ok(owner.sign_in(ALICE))
    # and Bob's account is not slowed by Alice's
    with browser_at(stack, "203.0.113.1") as first_again:
        ok(first_again.sign_in(BOB))


def test_limits_slide_instead_of_restarting_at_a_window_boundary(
    build_stack: BuildStack,
) -> None:
    # Given at most three sign-in attempts per address in any 600 seconds, and a moment one
    # second before a 600-second boundary of the clock
    stack = build_stack(rate_limit_sign_ins_per_address=3)
    now = stack.clock.now().timestamp()
    stack.clock.advance(timedelta(seconds=WINDOW - 1 - now % WINDOW))
    browser = stack.browser

    # When the address makes three attempts, and a fourth two seconds later (a new fixed
    # window would have begun and let three more through)
    for user in (ALICE, BOB, CAROL):
        assert refused(wrong_password(browser, user), 400) == "INVALID_CREDENTIALS"
    stack.clock.advance(timedelta(seconds=2))

    # Then the fourth is refused until the first attempt is 600 seconds old
    retry_after = limited(browser.sign_in(ALICE))
    assert retry_after == WINDOW - 2
    stack.clock.advance(timedelta(seconds=retry_after - 1))
    limited(browser.sign_in(ALICE))
    stack.clock.advance(timedelta(seconds=1))
    ok(browser.sign_in(ALICE))


def test_codes_per_attempt_are_limited(build_stack: BuildStack, mailbox: Mailbox) -> None:
    # Given at most two codes per attempt and window, and Alice's attempt
    stack = build_stack(rate_limit_codes_per_attempt=2)
    browser = stack.browser
    attempt_id = started_attempt(browser, ALICE[0])

    # When a third code is asked for
    ok(prepare(browser, attempt_id))
    ok(prepare(browser, attempt_id))
    limited(prepare(browser, attempt_id))

    # Then only two were sent, and the last one still works
    mailbox.settle(stack.services)
    codes = [m.code for m in mailbox.to(ALICE[0])]
    assert len(codes) == 2
    ok(verify(browser, attempt_id, codes[-1]))

    # And another attempt is not affected
    other = stack.open_browser()
    ok(prepare(other, started_attempt(other, BOB[0])))


def test_codes_per_address_are_limited(build_stack: BuildStack, mailbox: Mailbox) -> None:
    # Given at most two codes per address and window
    stack = build_stack(rate_limit_codes_per_address=2)

    # When three browsers at one address each ask for one code
    answers = []
    for user in (ALICE, BOB, CAROL):
        browser = stack.open_browser()
        answers.append(prepare(browser, started_attempt(browser, user[0])))

    # Then the third is 429, and no mail goes to its account
    ok(answers[0])
    ok(answers[1])
    limited(answers[2])
    mailbox.settle(stack.services)
    assert sorted(r for m in mailbox.received() for r in m.recipients) == [ALICE[0], BOB[0]]


def test_code_guesses_per_address_are_limited(build_stack: BuildStack, mailbox: Mailbox) -> None:
    # Given at most three code verifications per address and window, and Alice's code sent
    stack = build_stack(rate_limit_verifications_per_address=3)
    browser = stack.browser
    attempt_id = started_attempt(browser, ALICE[0])
    ok(prepare(browser, attempt_id))
    code = mailbox.next_code(ALICE[0])

    # When three wrong codes were tried
    for _ in range(3):
        assert refused(verify(browser, attempt_id, wrong(code)), 400) == "INVALID_CODE"

    # Then the fourth try is 429, even with the right code, and nobody is signed in
    limited(verify(browser, attempt_id, code))
    assert browser.session()["signins"] == []


def test_sign_ups_per_address_are_limited(build_stack: BuildStack) -> None:
    # Given at most two sign-ups per address and window
    stack = build_stack(rate_limit_sign_ups_per_address=2)

    # When one address starts three sign-ups
    answers = [
        sign_up(stack.open_browser(), **{**NEW_USER, "email": f"erin{n}@example.com"})
        for n in range(3)
    ]

    # Then the third is 429
    ok(answers[0])
    ok(answers[1])
    limited(answers[2])


def test_without_a_trusted_proxy_x_forwarded_for_is_ignored(build_stack: BuildStack) -> None:
    # Given no trusted proxy, and at most three sign-in attempts per address
    stack = build_stack(rate_limit_sign_ins_per_address=3)
    browser = stack.browser

    # When one client claims a different X-Forwarded-For address on every attempt
    answers = [
        wrong_password(browser, ALICE, **{"X-Forwarded-For": f"203.0.113.{n}"}) for n in range(4)
    ]

    # Then the spoofed addresses do not evade the limit
    assert [r.status_code for r in answers[:3]] == [400, 400, 400]
    limited(answers[3])


PROXIES = ["10.0.0.0/24", "192.0.2.7"]


def test_behind_trusted_proxies_the_address_they_saw_is_the_client(
    build_stack: BuildStack,
) -> None:
    # Given proxies named by network and address, and at most three sign-in attempts per address
    stack = build_stack(
        rate_limit_sign_ins_per_address=3,
        trusted_proxies=PROXIES,
    )
    with browser_at(stack, "10.0.0.5") as proxy:
        # When the proxy forwards attempts from five different clients, some through a
        # second trusted proxy in front of it
        # Then none is limited: they are separate clients
        for n in range(5):
            chain = f"203.0.113.{n}" + (", 192.0.2.7" if n % 2 else "")
            answer = wrong_password(proxy, ALICE, **{"X-Forwarded-For": chain})
            assert refused(answer, 400) == "INVALID_CREDENTIALS"

        # When one client tries four times, writing a new fake address before the proxy's
        answers = [
            wrong_password(proxy, ALICE, **{"X-Forwarded-For": f"10.9.9.{n}, 198.51.100.77"})
            for n in range(4)
        ]

    # Then the address the proxy saw counts, and the fourth is limited
    assert [r.status_code for r in answers[:3]] == [400, 400, 400]
    limited(answers[3])


def test_a_client_that_reaches_the_service_directly_cannot_choose_its_address(
    build_stack: BuildStack,
) -> None:
    # Given trusted proxies, and at most three sign-in attempts per address
    stack = build_stack(
        rate_limit_sign_ins_per_address=3,
        trusted_proxies=PROXIES,
    )
    # When a client that is not a proxy sends X-Forwarded-For with a new address each time
    with browser_at(stack, "198.51.100.9") as direct:
        answers = [
            wrong_password(direct, ALICE, **{"X-Forwarded-For": f"203.0.113.{n}"}) for n in range(4)
        ]

    # Then its own address counts: the fourth is limited
    assert [r.status_code for r in answers[:3]] == [400, 400, 400]
    limited(answers[3])


def _cross_site_requests(browser: Browser, attempt_id: str, sign_in_id: str) -> None:
    """Every cookie-carrying POST of the API, sent from another site; each must be refused."""
    evil = {"Origin": EVIL}
    requests: list[tuple[str, dict[str, Any]]] = [
        ("/session/switch-sign-in", {"params": {"sign_in_id": sign_in_id}}),
        ("/session/sign-out", {"params": {"sign_in_id": sign_in_id}}),
        ("/session/sign-out", {}),
        ("/session/switch-organization", {"params": {"organization_id": ACME}}),
        ("/session/switch-workspace", {"params": {"workspace_id": ""}}),
        (
            "/auth/signin",
            {"data": {"email": CAROL[0], "password": CAROL[1], "strategy": "plain_email"}},
        ),
        ("/auth/signin", {"data": {"email": CAROL[0], "strategy": "email_otp"}}),
        ("/auth/signup", {"data": NEW_USER}),
        ("/auth/prepare-verification", {"params": {"attempt_identifier": attempt_id}}),
        (
            "/auth/attempt-verification",
            {"params": {"attempt_identifier": attempt_id}, "data": {"verification_code": "123456"}},
        ),
    ]
    for path, kwargs in requests:
        response = browser.send("POST", path, headers=evil, **kwargs)
        assert refused(response, 403) == "FORBIDDEN_ORIGIN", path
        assert response.json()["session"] is None, path
        assert session_cookie(response) is None, path


def test_a_cross_site_post_with_the_cookie_is_refused_and_changes_nothing(
    stack: Stack, mailbox: Mailbox
) -> None:
    # Given Alice and Bob signed in (Bob active) and an email-code attempt open
    browser = stack.browser
    alice = browser.signed_in(ALICE)
    browser.signed_in(BOB)
    attempt_id = started_attempt(browser, CAROL[0])
    before = browser.session()
    events = stack.events_recorded()
    token = browser.token

    # When a page on another site makes the browser POST to every route
    _cross_site_requests(browser, attempt_id, alice["id"])

    # Then each is 403 FORBIDDEN_ORIGIN and nothing changed: no event, no mail, same cookie
    assert stack.events_recorded() == events
    assert browser.token == token
    assert browser.session() == before
    mailbox.settle(stack.services)
    assert mailbox.received() == []


def test_other_signs_of_a_cross_site_post_are_refused(stack: Stack) -> None:
    # Given Alice signed in
    browser = stack.browser
    browser.signed_in(ALICE)
    events = stack.events_recorded()

    # When a cookie-carrying POST comes with a null origin, a look-alike host, another port,
    # or no Origin but Sec-Fetch-Site: cross-site
    for headers in (
        {"Origin": "null"},
        {"Origin": "https://testserver.evil.example"},
        {"Origin": "https://testserver:8443"},
        {"Origin": EVIL, "Sec-Fetch-Site": "same-origin"},
        {"Sec-Fetch-Site": "cross-site"},
    ):
        response = browser.send("POST", "/session/sign-out", headers=headers)

        # Then it is refused with 403 FORBIDDEN_ORIGIN
        assert refused(response, 403) == "FORBIDDEN_ORIGIN", headers
    assert stack.events_recorded() == events


def test_same_site_posts_are_accepted(stack: Stack) -> None:
    # Given Alice signed in
    browser = stack.browser
    browser.signed_in(ALICE)

    # When the service's own pages POST (Origin of this host, or same-origin fetch metadata)
    # Then it works
    for headers in (
        {"Origin": "https://testserver"},
        {"Sec-Fetch-Site": "same-origin"},
        {"Sec-Fetch-Site": "none"},
        {},
    ):
        response = browser.send(
            "POST", "/session/switch-organization", params={"organization_id": ""}, headers=headers
        )
        ok(response)


def test_an_allowed_origin_may_post_with_the_cookie(build_stack: BuildStack) -> None:
    # Given the service allows its app's origin, and Alice signed in
    stack = build_stack(allowed_origins=["https://app.example"])
    browser = stack.browser
    browser.signed_in(ALICE)

    # When the app's origin switches her organization, it works; another origin is refused
    allowed = {"Origin": "https://app.example"}
    ok(browser.send("POST", "/session/switch-organization", params={"organization_id": ACME},
                    headers=allowed))  # fmt: skip
    assert browser.session()["active_signin"]["active_organization_membership"] is not None
    response = browser.send("POST", "/session/sign-out", headers={"Origin": EVIL})
    assert refused(response, 403) == "FORBIDDEN_ORIGIN"


def test_a_cross_site_post_without_the_cookie_is_refused_too(stack: Stack) -> None:
    # Given a browser without a cookie
    browser = stack.browser
    events = stack.events_recorded()

    # When a page on another site posts a sign-in (login CSRF: the victim's browser would
    # be signed in to the attacker's account) or a sign-up from it
    form = {"email": ALICE[0], "password": ALICE[1], "strategy": "plain_email"}
    answers = [
        browser.send("POST", "/auth/signin", data=form, headers={"Origin": EVIL}),
        browser.send("POST", "/auth/signin", data=form, headers={"Sec-Fetch-Site": "cross-site"}),
        browser.send("POST", "/auth/signup", data=NEW_USER, headers={"Origin": EVIL}),
        browser.send("POST", "/auth/signin", data={**form, "strategy": "email_otp"},
                     headers={"Origin": "null"}),
    ]  # fmt: skip

    # Then each is 403 FORBIDDEN_ORIGIN: no cookie, no session, nothing recorded
    for answer in answers:
        assert refused(answer, 403) == "FORBIDDEN_ORIGIN"
        assert session_cookie(answer) is None
    assert browser.token is None
    assert stack.events_recorded() == events


def test_an_allowed_origin_may_sign_in_without_a_cookie(build_stack: BuildStack) -> None:
    # Given the service allows its app's origin
    stack = build_stack(allowed_origins=["https://app.example"])

    # When the app signs Alice in from a browser without a cookie, it works
    form = {"email": ALICE[0], "password": ALICE[1], "strategy": "plain_email"}
    answer = stack.browser.send(
        "POST", "/auth/signin", data=form, headers={"Origin": "https://app.example"}
    )
    data = ok(answer)
    assert session_cookie(answer) is not None
    assert [s["user_id"] for s in data["signins"]] == [ALICE[2]]


def test_a_sane_request_id_is_echoed_and_others_replaced(stack: Stack) -> None:
    browser = stack.browser
    sane = "req-0123456789:abc.DEF_x"

    # When requests carry a sane X-Request-Id, on success and on failure
    for response in (
        browser.send("GET", "/session", headers={"X-Request-Id": sane}),
        browser.send("POST", "/session/switch-sign-in", headers={"X-Request-Id": sane}),
    ):
        # Then it comes back
        assert response.headers.get("x-request-id") == sane

    # When they carry none, or one that is too short, too long or has other characters
    seen = set()
    for offered in (None, "short", "x" * 129, "has space in it", "semi;colon;value", "<script>x"):
        headers = {} if offered is None else {"X-Request-Id": offered}
        response = browser.send("GET", "/session", headers=headers)

        # Then a new id of the service's own is sent instead, different each time
        returned = response.headers.get("x-request-id", "")
        assert re.fullmatch(r"[A-Za-z0-9._:-]{8,128}", returned), returned
        assert returned != offered
        seen.add(returned)
    assert len(seen) == 6
