"""Creating an account: POST /auth/signup, then the emailed code, then a signed-in account."""

from __future__ import annotations

import httpx
import pytest

from tests.auth.mailbox import Mailbox
from tests.auth.support import prepare, sign_up, verify
from tests.e2e.harness import Json, Stack
from tests.e2e.wire import fields_of, new_token, ok, refused, session_cookie
from tests.helpers import ALICE

pytestmark = pytest.mark.slow  # a real SMTP server per test

DORA = {
    "first_name": "Dorothea",
    "last_name": "Quixwell",
    "email": "dora.quixwell@example.com",
    "password": "dora-secret-passphrase",
}


def open_sign_up(data: Json) -> Json:
    """The one sign-up attempt of a session document that waits for a step."""
    waiting = [a for a in data["signup_attempts"] if not a["completed"]]
    assert len(waiting) == 1, data["signup_attempts"]
    attempt: Json = waiting[0]
    return attempt


def assert_discloses_nothing(response: httpx.Response, fields: dict[str, str]) -> None:
    """The answer holds none of the values sent, and no key that would carry them."""
    for value in fields.values():
        if value.strip():
            assert value.strip().lower() not in response.text.lower(), value
    keys = {key for key, _ in fields_of(response.json())}
    assert not keys & {"password", "password_hash", "email", "first_name", "last_name"}


def test_a_sign_up_creates_the_account_once_its_email_is_verified(
    stack: Stack, mailbox: Mailbox
) -> None:
    # Given a browser that signs up as Dora
    browser = stack.browser
    started = sign_up(browser, **DORA)
    data = ok(started)
    first_token = new_token(started)

    # Then the session lists the attempt, waiting for the email to be verified, and nothing
    # of what she typed
    attempt = open_sign_up(data)
    assert attempt["current_step"] == "verify_email"
    assert data["signins"] == []
    assert data["signin_attempts"] == []
    assert_discloses_nothing(started, DORA)

    # And the account does not exist yet
    other = stack.open_browser()
    response = other.sign_in((DORA["email"], DORA["password"], ""))
    assert refused(response, 400) == "INVALID_CREDENTIALS"

    # When the code is sent and used
    ok(prepare(browser, attempt["id"]))
    code = mailbox.next_code(DORA["email"])
    verified = verify(browser, attempt["id"], code)
    data = ok(verified)

    # Then Dora is signed in and active, the attempt is done and the cookie was replaced
    [dora] = data["signins"]
    assert data["active_signin_id"] == dora["id"]
    assert dora["user"]["first_name"] == DORA["first_name"]
    assert dora["user"]["last_name"] == DORA["last_name"]
    assert dora["user"]["primary_email_address"]["email"] == DORA["email"]
    assert [a for a in data["signup_attempts"] if not a["completed"]] == []
    assert new_token(verified) != first_token

    # And in a new browser she signs in with her password, as the same user
    again = ok(other.sign_in((DORA["email"], DORA["password"], "")))
    assert [s["user_id"] for s in again["signins"]] == [dora["user_id"]]

    # And her email is now taken
    assert refused(sign_up(stack.open_browser(), **DORA), 400) == "EMAIL_TAKEN"


def test_the_email_of_an_account_is_taken(stack: Stack, mailbox: Mailbox) -> None:
    # Given Alice's account
    for email in (ALICE[0], ALICE[0].upper(), f"  {ALICE[0]} "):
        browser = stack.open_browser()

        # When someone signs up with her email, in any case
        response = sign_up(browser, **{**DORA, "email": email})

        # Then it is 400 EMAIL_TAKEN, and no attempt waits for a code
        assert refused(response, 400) == "EMAIL_TAKEN", email
        assert browser.session()["signup_attempts"] == []
    mailbox.settle(stack.services)
    assert mailbox.received() == []


def test_of_two_sign_ups_for_one_email_only_the_first_verified_creates_it(
    stack: Stack, mailbox: Mailbox
) -> None:
    # Given two browsers that sign up with Dora's email, with different passwords
    first, second = stack.browser, stack.open_browser()
    first_id = open_sign_up(ok(sign_up(first, **DORA)))["id"]
    impostor = {**DORA, "password": "another-passphrase"}
    second_id = open_sign_up(ok(sign_up(second, **impostor)))["id"]
    ok(prepare(first, first_id))
    first_code = mailbox.next_code(DORA["email"])
    ok(prepare(second, second_id))
    second_code = mailbox.next_code(DORA["email"])

    # When the first verifies, then the second
    ok(verify(first, first_id, first_code))
    response = verify(second, second_id, second_code)

    # Then the second is refused: the email is taken, nobody signs in there
    assert refused(response, 400) == "EMAIL_TAKEN"
    assert second.session()["signins"] == []

    # And the account has the first password, not the second
    third = stack.open_browser()
    assert refused(third.sign_in((DORA["email"], impostor["password"], "")), 400) == (
        "INVALID_CREDENTIALS"
    )
    ok(third.sign_in((DORA["email"], DORA["password"], "")))


def test_a_password_under_eight_characters_is_weak(stack: Stack) -> None:
    # When someone signs up with a 7-character password
    browser = stack.browser
    response = sign_up(browser, **{**DORA, "password": "seven77"})

    # Then it is 400 WEAK_PASSWORD, the password not echoed, and no attempt waits
    assert refused(response, 400) == "WEAK_PASSWORD"
    assert_discloses_nothing(response, {"password": "seven77"})
    assert browser.session()["signup_attempts"] == []

    # When the password has eight characters
    # Then the sign-up starts
    open_sign_up(ok(sign_up(browser, **{**DORA, "password": "eight888"})))


def test_each_missing_field_is_named_without_echoing_any_value(stack: Stack) -> None:
    for name in DORA:
        for absent in ("missing", "empty", "blank"):
            # Given a sign-up form without one field (left out, empty, or spaces)
            fields = {k: v for k, v in DORA.items() if k != name}
            if absent != "missing":
                fields[name] = "" if absent == "empty" else "   "
            browser = stack.open_browser()

            # When it is sent
            response = sign_up(browser, **fields)

            # Then it is 400 INVALID_REQUEST naming the field, echoing none of the values
            assert refused(response, 400) == "INVALID_REQUEST", (name, absent)
            assert name in response.json()["errors"][0]["message"], (name, absent)
            assert_discloses_nothing(response, fields)
            assert session_cookie(response) is None or browser.session()["signup_attempts"] == []
