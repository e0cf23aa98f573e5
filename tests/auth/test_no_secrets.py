"""No password, one-time code, cookie token or signed JWT is ever stored, logged or answered."""

from __future__ import annotations

import base64
import logging
import re

import jwt
import pytest

from tests.auth.conftest import BuildStack
from tests.auth.mailbox import Mailbox
from tests.auth.store_dump import store_text
from tests.auth.support import (
    open_attempt,
    prepare,
    sign_up,
    start_code_sign_in,
    started_attempt,
    verify,
    wrong,
)
from tests.e2e.harness import Browser, Stack
from tests.e2e.wire import ok, refused, session_cookie
from tests.helpers import ACME, ACME_WEB, ALICE, BOB, CAROL

pytestmark = pytest.mark.slow  # a real SMTP server per test

NEW_PASSWORD = "dora-Zq8-secret-passphrase"
WRONG_PASSWORD = "bob-wrong-guess-Kx93"
WEAK_PASSWORD = "w3ak-Pw"
TAKEN_PASSWORD = "taken-email-Vv71-pass"
NEW_USER = {
    "first_name": "Dora",
    "last_name": "Dunn",
    "email": "dora.dunn@example.com",
    "password": NEW_PASSWORD,
}
# The test's own SMTP server logs what it receives; the service's loggers are what count.
OWN_LOGGERS = ("mail.log",)


def token_forms(token: str) -> list[str]:
    """A cookie token and the other spellings of its random bytes."""
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    standard = base64.b64encode(raw).decode()
    return [token, raw.hex(), standard, standard.rstrip("=")]


def contains(text: str, secret: str) -> bool:
    """True if ``secret`` is in ``text``; a 6-digit code only as a number of its own."""
    if secret.isdigit():
        return re.search(rf"(?<![0-9A-Za-z]){secret}(?![0-9A-Za-z])", text) is not None
    return secret in text


class Secrets:
    """Every secret a story used, by kind."""

    def __init__(self) -> None:
        self.passwords = [ALICE[1], BOB[1], CAROL[1], NEW_PASSWORD, WRONG_PASSWORD,
                          WEAK_PASSWORD, TAKEN_PASSWORD]  # fmt: skip
        self.codes: list[str] = []
        self.cookies: list[str] = []
        self.jwts: list[str] = []

    def all(self, *, with_jwts: bool = True) -> list[tuple[str, str]]:
        """(kind, value) of every secret and its other spellings."""
        found = [("password", p) for p in self.passwords]
        found += [("code", c) for c in self.codes]
        found += [("cookie", form) for c in self.cookies for form in token_forms(c)]
        if with_jwts:
            found += [("jwt", t) for t in self.jwts]
            found += [("jwt signature", t.rsplit(".", 1)[1]) for t in self.jwts]
        return found


def token(browser: Browser, secrets: Secrets) -> None:
    """Ask for a session token and remember it."""
    value = ok(browser.send("GET", "/session/token"))["token"]
    assert isinstance(value, str)
    secrets.jwts.append(value)


def every_flow(stack: Stack, mailbox: Mailbox, secrets: Secrets) -> list[Browser]:
    """Password, code and sign-up stories, tokens, switches and sign-outs; the browsers used."""
    first, second, third = stack.browser, stack.open_browser(), stack.open_browser()

    # Passwords: right, wrong, right; a token after each switch
    alice = first.signed_in(ALICE)
    token(first, secrets)
    form = {"email": BOB[0], "password": WRONG_PASSWORD, "strategy": "plain_email"}
    assert refused(first.send("POST", "/auth/signin", data=form), 400) == "INVALID_CREDENTIALS"
    bob = first.signed_in(BOB)
    ok(first.switch_organization(ACME))
    token(first, secrets)

    # Emailed codes: a code, a wrong guess, a second code, the right one
    attempt_id = started_attempt(first, CAROL[0])
    ok(prepare(first, attempt_id))
    stale = mailbox.next_code(CAROL[0])
    assert refused(verify(first, attempt_id, wrong(stale)), 400) == "INVALID_CODE"
    secrets.codes.append(wrong(stale))
    ok(prepare(first, attempt_id))
    ok(verify(first, attempt_id, mailbox.next_code(CAROL[0])))
    ok(first.switch_sign_in(alice["id"]))
    ok(first.switch_workspace(ACME_WEB))
    token(first, secrets)

    # Sign-up: refused ones, then one verified; then its password in another browser
    assert refused(sign_up(second, **{**NEW_USER, "password": WEAK_PASSWORD}), 400) == (
        "WEAK_PASSWORD"
    )
    taken = {**NEW_USER, "email": ALICE[0], "password": TAKEN_PASSWORD}
    assert refused(sign_up(second, **taken), 400) == "EMAIL_TAKEN"
    sign_up_id = ok(sign_up(second, **NEW_USER))["signup_attempts"][0]["id"]
    ok(prepare(second, sign_up_id))
    ok(verify(second, sign_up_id, mailbox.next_code(NEW_USER["email"])))
    token(second, secrets)
    ok(third.sign_in((NEW_USER["email"], NEW_PASSWORD, "")))

    # An email-code attempt for Alice in the third browser, abandoned after a wrong code
    started = start_code_sign_in(third, ALICE[0])
    abandoned = open_attempt(ok(started))["id"]
    ok(prepare(third, abandoned))
    secrets.codes.append(wrong(mailbox.next_code(ALICE[0])))
    assert refused(verify(third, abandoned, secrets.codes[-1]), 400) == "INVALID_CODE"

    # Keys rotated, more tokens; sign-outs rotate cookies
    stack.services.keys.rotate()
    token(first, secrets)
    ok(first.sign_out(bob["id"]))
    token(first, secrets)
    ok(first.sign_out())
    ok(third.sign_out())
    mailbox.settle(stack.services)
    secrets.codes.extend(m.code for m in mailbox.received())
    return [first, second, third]


def test_no_secret_is_stored_logged_or_answered(
    durable_database_url: str,
    build_stack: BuildStack,
    mailbox: Mailbox,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given every logger recording at DEBUG, and mail going over SMTP
    caplog.set_level(logging.DEBUG)
    stack = build_stack()
    secrets = Secrets()

    # When every flow runs: passwords, codes, sign-up, tokens, key rotation, sign-outs
    browsers = every_flow(stack, mailbox, secrets)
    responses = [r for b in browsers for r in b.responses]
    for response in responses:
        cookie = session_cookie(response)
        if cookie is not None and cookie.value:
            secrets.cookies.append(cookie.value)
    stored = store_text(durable_database_url, stack.services)
    logged = "\n".join(
        f"{r.name} {r.getMessage()} {r.exc_text or ''}"
        for r in caplog.records
        if not r.name.startswith(OWN_LOGGERS)
    )

    # Then the evidence is real: the secrets exist, the dump and the log are not empty
    assert len(secrets.codes) == 6
    assert len(set(secrets.cookies)) >= 8
    assert len(secrets.jwts) == 6
    assert all(jwt.get_unverified_header(t)["alg"] == "ES256" for t in secrets.jwts)
    assert "SignInCompleted" in stored
    assert "VerificationPrepared" in stored
    assert ALICE[2] in stored
    assert "$argon2" in stored
    assert "HTTP Request" in logged
    assert any(contains(m.body, m.code) for m in mailbox.received())

    # And no secret is in the store, the log, or any answer (a token only in its own answer)
    leaks = [(kind, "store") for kind, value in secrets.all() if contains(stored, value)]
    leaks += [(kind, "log") for kind, value in secrets.all() if contains(logged, value)]
    for response in responses:
        own_token = response.url.path == "/session/token"
        headers = "\n".join(
            f"{k}: {v}" for k, v in response.headers.multi_items() if k.lower() != "set-cookie"
        )
        seen = f"{response.text}\n{headers}\n{response.url}"
        leaks += [
            (kind, f"{response.request.method} {response.url.path}")
            for kind, value in secrets.all(with_jwts=not own_token)
            if contains(seen, value)
        ]
    assert leaks == []
