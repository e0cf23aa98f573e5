"""Steps of the sign-in and sign-up stories over HTTP, and readers of what the store recorded."""

from __future__ import annotations

from typing import Any

import httpx
import jwt

from domain.ids import aggregate_uuid
from infrastructure.container import Services
from tests.auth.mailbox import Mailbox
from tests.e2e.harness import Browser, Json, User
from tests.e2e.wire import ok

OTP = "email_otp"
UNKNOWN_EMAIL = "nobody-here@example.com"


def start_code_sign_in(browser: Browser, email: str) -> httpx.Response:
    """POST /auth/signin with ``strategy=email_otp``."""
    return browser.send("POST", "/auth/signin", data={"email": email, "strategy": OTP})


def prepare(browser: Browser, attempt_id: str, **headers: str) -> httpx.Response:
    """POST /auth/prepare-verification for an attempt (emails a new code)."""
    params = {"attempt_identifier": attempt_id, "strategy": OTP}
    return browser.send("POST", "/auth/prepare-verification", params=params, headers=headers)


def verify(browser: Browser, attempt_id: str, code: str | None) -> httpx.Response:
    """POST /auth/attempt-verification with a code (None: without the field)."""
    data = {} if code is None else {"verification_code": code}
    params = {"attempt_identifier": attempt_id}
    return browser.send("POST", "/auth/attempt-verification", params=params, data=data)


def sign_up(browser: Browser, **fields: str) -> httpx.Response:
    """POST /auth/signup with form fields."""
    return browser.send("POST", "/auth/signup", data=fields)


def open_attempt(session: Json) -> Json:
    """The one sign-in attempt that is waiting for a step."""
    waiting = [a for a in session["signin_attempts"] if not a["completed"]]
    assert len(waiting) == 1, session["signin_attempts"]
    attempt: Json = waiting[0]
    return attempt


def started_attempt(browser: Browser, email: str) -> str:
    """Start an email-code sign-in for ``email``, insisting it works; the attempt's id."""
    attempt_id: str = open_attempt(ok(start_code_sign_in(browser, email)))["id"]
    return attempt_id


def wrong(code: str) -> str:
    """A well-formed code that is not ``code``."""
    return f"{(int(code) + 1) % 1_000_000:06d}"


def signed_in_by_code(browser: Browser, mailbox: Mailbox, user: User) -> Json:
    """Sign ``user`` in with an emailed code, insisting it works; the session afterwards."""
    attempt_id = started_attempt(browser, user[0])
    ok(prepare(browser, attempt_id))
    return ok(verify(browser, attempt_id, mailbox.next_code(user[0])))


def session_events(services: Services, session_id: str) -> list[Any]:
    """Every event recorded for one session, oldest first, as domain events."""
    app = services.sessions
    originator = aggregate_uuid(int(session_id))
    events: list[Any] = []
    start = 1
    while True:
        page = app.recorder.select_notifications(start=start, limit=500)
        if not page:
            return events
        events.extend(app.mapper.to_domain_event(n) for n in page if n.originator_id == originator)
        start = page[-1].id + 1


def names(events: list[Any]) -> list[str]:
    """The events' class names."""
    return [type(e).__name__ for e in events]


def jwks_keys(browser: Browser) -> dict[str, jwt.PyJWK]:
    """The published public keys, by kid, from GET /.well-known/jwks.json."""
    response = browser.send("GET", "/.well-known/jwks.json")
    assert response.status_code == 200, response.text
    keys = response.json()["keys"]
    assert isinstance(keys, list)
    return {str(k["kid"]): jwt.PyJWK(k) for k in keys}


def verified_claims(token: str, keys: dict[str, jwt.PyJWK], issuer: str) -> Json:
    """The claims of ``token`` after checking its ES256 signature with a published key.

    Times are checked by the tests against the service's settable clock, not the wall clock.
    """
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "ES256", header
    assert header["kid"] in keys, f"kid {header['kid']} not published in {sorted(keys)}"
    claims: Json = jwt.decode(
        token,
        keys[header["kid"]],
        algorithms=["ES256"],
        issuer=issuer,
        options={
            "verify_exp": False,
            "verify_nbf": False,
            "verify_iat": False,
            "require": ["iss", "sub", "sid", "iat", "exp"],
        },
    )
    return claims
