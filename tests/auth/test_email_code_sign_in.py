"""Signing in with a code sent by email: POST /auth/signin (email_otp), prepare, attempt."""

from __future__ import annotations

import logging
import time
from datetime import timedelta

import httpx
import pytest

from tests.auth.conftest import BuildStack
from tests.auth.mailbox import CODE, Mailbox
from tests.auth.support import (
    UNKNOWN_EMAIL,
    open_attempt,
    prepare,
    start_code_sign_in,
    started_attempt,
    verify,
    wrong,
)
from tests.e2e.harness import Json, Stack, sign_in_of
from tests.e2e.wire import malformed_spellings, new_token, ok, refused, session_cookie
from tests.helpers import ALICE, BOB, SequentialCodes

pytestmark = pytest.mark.slow  # a real SMTP server per test (the rules: tests/application)

CODE_LIFETIME = timedelta(minutes=10)


def shape(document: object) -> object:
    """The keys and value types of a JSON document, at any depth, without the values."""
    if isinstance(document, dict):
        return {key: shape(value) for key, value in document.items()}
    if isinstance(document, list):
        return [shape(item) for item in document]
    return type(document).__name__


def test_a_code_sent_by_email_signs_the_account_in(stack: Stack, mailbox: Mailbox) -> None:
    # Given a browser that asks to sign Alice in with an emailed code
    browser = stack.browser
    started = start_code_sign_in(browser, ALICE[0])
    data = ok(started)
    first_token = new_token(started)
    attempt = open_attempt(data)
    assert attempt["method"] == "email_otp"
    assert attempt["current_step"] == "verify_email_otp"
    assert data["signins"] == []
    assert data["active_signin_id"] is None

    # When it asks for the code
    ok(prepare(browser, attempt["id"]))

    # Then a 6-digit code arrives at Alice's address, and only there
    mail = mailbox.next_mail(ALICE[0])
    assert mail.recipients == (ALICE[0],)
    assert mail.to == ALICE[0]
    code = mail.code

    # When the browser sends that code
    verified = verify(browser, attempt["id"], code)
    data = ok(verified)

    # Then Alice is signed in and active, the attempt is done and the cookie was replaced
    alice = sign_in_of(data, ALICE)
    assert data["active_signin_id"] == alice["id"]
    assert data["active_signin"] == alice
    assert [a for a in data["signin_attempts"] if not a["completed"]] == []
    assert new_token(verified) != first_token
    assert browser.session()["active_signin_id"] == alice["id"]
    browser.use_cookie(first_token)
    assert refused(browser.sign_out(), 401) == "UNAUTHORIZED"


def test_a_wrong_code_is_refused_and_the_right_one_still_works(
    stack: Stack, mailbox: Mailbox
) -> None:
    # Given Alice's attempt, before any code was sent
    browser = stack.browser
    attempt_id = started_attempt(browser, ALICE[0])

    # When a code is tried before one was sent
    # Then it is refused
    assert refused(verify(browser, attempt_id, "123456"), 400) == "INVALID_CODE"

    # Given the code was sent
    ok(prepare(browser, attempt_id))
    code = mailbox.next_code(ALICE[0])

    # When a wrong code is sent, or something that is not a 6-digit code
    for attempt_code in (wrong(code), code[:5], f"{code}0", "abcdef", f" {code}"):
        response = verify(browser, attempt_id, attempt_code)

        # Then it is 400 INVALID_CODE, nobody is signed in and the cookie stays
        assert refused(response, 400) == "INVALID_CODE", attempt_code
        assert session_cookie(response) is None
    assert browser.session()["signins"] == []

    # When the right code follows
    # Then it signs Alice in
    sign_in_of(ok(verify(browser, attempt_id, code)), ALICE)


def test_a_code_expires_after_ten_minutes(stack: Stack, mailbox: Mailbox) -> None:
    # Given a code sent to Alice
    browser = stack.browser
    attempt_id = started_attempt(browser, ALICE[0])
    ok(prepare(browser, attempt_id))
    stale = mailbox.next_code(ALICE[0])

    # When ten minutes have passed
    stack.clock.advance(CODE_LIFETIME)

    # Then that code no longer works
    assert refused(verify(browser, attempt_id, stale), 400) == "INVALID_CODE"

    # When a new code is sent and used a second before its ten minutes are up
    ok(prepare(browser, attempt_id))
    fresh = mailbox.next_code(ALICE[0])
    stack.clock.advance(CODE_LIFETIME - timedelta(seconds=1))

    # Then it works
    sign_in_of(ok(verify(browser, attempt_id, fresh)), ALICE)


def test_a_new_code_voids_the_previous_one(build_stack: BuildStack, mailbox: Mailbox) -> None:
    # Given two codes sent for one attempt, different as every two codes the service sends
    stack = build_stack(new_code=SequentialCodes())
    browser = stack.browser
    attempt_id = started_attempt(browser, ALICE[0])
    ok(prepare(browser, attempt_id))
    old = mailbox.next_code(ALICE[0])
    ok(prepare(browser, attempt_id))
    new = mailbox.next_code(ALICE[0])
    assert new != old

    # When the older code is sent
    # Then it is refused
    assert refused(verify(browser, attempt_id, old), 400) == "INVALID_CODE"

    # And the newest one works
    sign_in_of(ok(verify(browser, attempt_id, new)), ALICE)


def test_a_code_works_only_for_its_own_attempt_and_only_once(
    build_stack: BuildStack, mailbox: Mailbox
) -> None:
    # Given one browser with two attempts open, for Alice and for Bob, each with its own code
    stack = build_stack(new_code=SequentialCodes())
    browser = stack.browser
    for_alice = started_attempt(browser, ALICE[0])
    ok(prepare(browser, for_alice))
    alice_code = mailbox.next_code(ALICE[0])
    started = start_code_sign_in(browser, BOB[0])
    [for_bob] = [a["id"] for a in ok(started)["signin_attempts"] if a["id"] != for_alice]
    ok(prepare(browser, for_bob))
    bob_code = mailbox.next_code(BOB[0])
    assert alice_code != bob_code

    # When Alice's code is sent for Bob's attempt
    # Then it is refused
    assert refused(verify(browser, for_bob, alice_code), 400) == "INVALID_CODE"

    # When Alice's code completes her attempt, and she signs out
    sign_in_of(ok(verify(browser, for_alice, alice_code)), ALICE)
    ok(browser.sign_out())

    # Then the used code cannot sign her in again
    assert refused(verify(browser, for_alice, alice_code), 400) == "INVALID_ATTEMPT"
    assert browser.session()["signins"] == []


def test_four_wrong_codes_leave_the_right_one_working(stack: Stack, mailbox: Mailbox) -> None:
    # Given a code sent to Alice, and four wrong ones tried
    browser = stack.browser
    attempt_id = started_attempt(browser, ALICE[0])
    ok(prepare(browser, attempt_id))
    code = mailbox.next_code(ALICE[0])
    for _ in range(4):
        assert refused(verify(browser, attempt_id, wrong(code)), 400) == "INVALID_CODE"

    # When the right code is sent
    # Then Alice is signed in
    sign_in_of(ok(verify(browser, attempt_id, code)), ALICE)


def test_the_fifth_wrong_code_ends_the_attempt(stack: Stack, mailbox: Mailbox) -> None:
    # Given a code sent to Alice, and five wrong ones tried
    browser = stack.browser
    attempt_id = started_attempt(browser, ALICE[0])
    ok(prepare(browser, attempt_id))
    code = mailbox.next_code(ALICE[0])
    for _ in range(5):
        assert refused(verify(browser, attempt_id, wrong(code)), 400) == "INVALID_CODE"

    # When the right code is sent
    response = verify(browser, attempt_id, code)

    # Then it is refused too, and nobody is signed in
    assert refused(response, 400) in ("INVALID_CODE", "INVALID_ATTEMPT")
    assert session_cookie(response) is None
    data = browser.session()
    assert data["signins"] == []
    assert [a for a in data["signin_attempts"] if a["id"] == attempt_id and a["completed"]] == []

    # And a new code cannot revive the attempt: none is sent
    assert refused(prepare(browser, attempt_id), 400) == "INVALID_ATTEMPT"
    mailbox.settle(stack.services)
    assert len(mailbox.to(ALICE[0])) == 1


def _story(browser_stack: Stack, email: str) -> list[httpx.Response]:
    """Start an email-code sign-in in a new browser, ask for a code, try a wrong one."""
    browser = browser_stack.open_browser()
    started = start_code_sign_in(browser, email)
    attempt_id = open_attempt(started.json()["data"])["id"]
    return [started, prepare(browser, attempt_id), verify(browser, attempt_id, "000000")]


def _comparable(response: httpx.Response) -> tuple[int, bool, object, object]:
    """What a caller sees of an answer, without the ids and times that differ anyway."""
    body: Json = response.json()
    data = body["data"]
    attempts = (
        [
            {k: v for k, v in a.items() if not (k == "id" or k.endswith("_at"))}
            for a in data.get("signin_attempts", [])
        ]
        if isinstance(data, dict)
        else None
    )
    errors = body["errors"]
    return (
        response.status_code,
        session_cookie(response) is not None,
        (shape(body), attempts),
        errors,
    )


def test_an_unknown_email_looks_like_a_known_one(stack: Stack, mailbox: Mailbox) -> None:
    # Given two browsers: one asks a code for Alice, the other for an address with no account
    known = _story(stack, ALICE[0])
    unknown = _story(stack, UNKNOWN_EMAIL)

    # Then every answer has the same status, cookie behaviour, keys and values
    assert [r.status_code for r in known] == [200, 200, 400]
    assert [_comparable(r) for r in unknown] == [_comparable(r) for r in known]

    # And mail went to Alice only: nothing to the unknown address nor anyone else
    mailbox.settle(stack.services)
    assert [m.recipients for m in mailbox.received()] == [(ALICE[0],)]


def test_a_full_session_answers_the_same_for_unknown_and_known_emails(
    build_stack: BuildStack,
) -> None:
    # Given a session holding its maximum of one sign-in (Alice)
    stack = build_stack(max_sign_ins=1)
    stack.browser.signed_in(ALICE)

    # When it starts an email-code sign-in for Bob, and for an address with no account
    for_bob = start_code_sign_in(stack.browser, BOB[0])
    for_nobody = start_code_sign_in(stack.browser, UNKNOWN_EMAIL)

    # Then both answers are the same
    assert for_nobody.status_code == for_bob.status_code
    assert for_nobody.json()["errors"] == for_bob.json()["errors"]


def test_malformed_attempt_ids_are_invalid_attempts(
    build_stack: BuildStack, mailbox: Mailbox
) -> None:
    # Given Alice's attempt with a code sent
    stack = build_stack(
        rate_limit_codes_per_attempt=100,
        rate_limit_codes_per_address=100,
        rate_limit_verifications_per_address=100,
    )
    browser = stack.browser
    attempt_id = started_attempt(browser, ALICE[0])
    ok(prepare(browser, attempt_id))
    code = mailbox.next_code(ALICE[0])
    events_before = stack.events_recorded()

    # When either verification route gets a malformed id (many read as hers by int())
    bodies: set[str] = set()
    for name, spelling in malformed_spellings(attempt_id).items():
        for response in (prepare(browser, spelling), verify(browser, spelling, code)):
            # Then it is 400 INVALID_ATTEMPT, with the one body for every spelling
            assert refused(response, 400) == "INVALID_ATTEMPT", (name, response.text)
            bodies.add(str(response.json()["errors"]))
    missing = browser.send("POST", "/auth/prepare-verification", params={"strategy": "email_otp"})
    assert refused(missing, 400) == "INVALID_ATTEMPT"
    assert len(bodies) == 1

    # And nothing was recorded or sent, so her code still works
    assert stack.events_recorded() == events_before
    mailbox.settle(stack.services)
    assert len(mailbox.to(ALICE[0])) == 1
    sign_in_of(ok(verify(browser, attempt_id, code)), ALICE)


def test_another_sessions_attempt_is_an_invalid_attempt(stack: Stack, mailbox: Mailbox) -> None:
    # Given Alice's attempt in her browser, with its code sent
    victim = stack.browser
    attempt_id = started_attempt(victim, ALICE[0])
    ok(prepare(victim, attempt_id))
    code = mailbox.next_code(ALICE[0])

    # And another browser with a session of its own
    intruder = stack.open_browser()
    intruder.session()
    unknown_id = str(int(attempt_id) + 1)

    # When the other browser asks for a code for her attempt, or sends her code to it
    asked = prepare(intruder, attempt_id)
    sent = verify(intruder, attempt_id, code)

    # Then each is 400 INVALID_ATTEMPT, word for word as for an id nobody has
    assert refused(asked, 400) == "INVALID_ATTEMPT"
    assert refused(sent, 400) == "INVALID_ATTEMPT"
    assert asked.json() == prepare(intruder, unknown_id).json()
    assert sent.json() == verify(intruder, unknown_id, code).json()
    assert intruder.session()["signins"] == []

    # And Alice got no second code, and hers still signs her in
    mailbox.settle(stack.services)
    assert len(mailbox.to(ALICE[0])) == 1
    sign_in_of(ok(verify(victim, attempt_id, code)), ALICE)


def test_another_session_cannot_use_up_an_attempts_codes(stack: Stack, mailbox: Mailbox) -> None:
    # Given Alice's attempt, and another browser that knows its id
    victim = stack.browser
    attempt_id = started_attempt(victim, ALICE[0])
    intruder = stack.open_browser()
    intruder.session()

    # When the other browser asks for codes for it, as many times as an attempt may have
    for _ in range(5):
        assert refused(prepare(intruder, attempt_id), 400) == "INVALID_ATTEMPT"

    # Then Alice can still have her code sent, and sign in with it
    ok(prepare(victim, attempt_id))
    sign_in_of(ok(verify(victim, attempt_id, mailbox.next_code(ALICE[0]))), ALICE)


def test_without_smtp_the_code_goes_to_the_log_with_a_warning(
    build_stack: BuildStack, mailbox: Mailbox, caplog: pytest.LogCaptureFixture
) -> None:
    # Given the service runs without an SMTP host (development mode)
    caplog.set_level(logging.INFO, logger="session_ledger.mail")
    stack = build_stack(smtp_host=None)
    browser = stack.browser
    attempt_id = started_attempt(browser, ALICE[0])

    # When a code is asked for
    ok(prepare(browser, attempt_id))

    # Then a warning in the log names development mode, the address and the code
    deadline = time.monotonic() + 10
    while not (records := [r for r in caplog.records if r.name == "session_ledger.mail"]):
        assert time.monotonic() < deadline, "nothing logged by session_ledger.mail"
        time.sleep(0.02)
    [record] = records
    message = record.getMessage()
    assert record.levelno == logging.WARNING
    assert "DEVELOPMENT MODE" in message
    assert ALICE[0] in message
    codes = CODE.findall(message)
    assert len(codes) == 1, message

    # And no mail was sent; the logged code signs Alice in
    assert mailbox.received() == []
    sign_in_of(ok(verify(browser, attempt_id, codes[0])), ALICE)
