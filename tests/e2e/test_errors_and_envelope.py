"""The envelope around every answer, the one 401, and what never leaves the service."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from tests.e2e.harness import Browser, Json, Stack, sign_in_of
from tests.e2e.wire import (
    SESSION_KEYS,
    assert_wire_formats,
    envelope,
    fields_of,
    new_token,
    ok,
    refused,
    session_cookie,
)
from tests.helpers import ACME, ACME_WEB, ALICE, BOB, CAROL

Call = Callable[[Browser, Json], httpx.Response]

SUCCESSES: dict[str, Call] = {
    "GET /session": lambda b, alice: b.get_session(),
    "POST /auth/signin": lambda b, alice: b.sign_in(CAROL),
    "switch-sign-in": lambda b, alice: b.switch_sign_in(alice["id"]),
    "switch-organization": lambda b, alice: b.switch_organization(ACME),
    "switch-workspace": lambda b, alice: b.switch_workspace(ACME_WEB),
    "sign-out one": lambda b, alice: b.sign_out(alice["id"]),
    "sign-out all": lambda b, alice: b.sign_out(),
}


@pytest.mark.parametrize("call", SUCCESSES.values(), ids=SUCCESSES.keys())
def test_every_success_is_the_envelope_of_the_session(browser: Browser, call: Call) -> None:
    # Given Alice working in Acme Web, then Bob signed in and active
    alice = browser.signed_in(ALICE)
    ok(browser.switch_workspace(ACME_WEB))
    browser.signed_in(BOB)

    # When the browser calls the route
    response = call(browser, alice)

    # Then the answer is {status: 200, message: "", data: the session, session: its short
    # form, errors: null}, uncached, with decimal ids and RFC 3339 UTC timestamps
    data = ok(response)
    assert set(data) == SESSION_KEYS
    assert 17 <= len(data["id"]) <= 20
    assert assert_wire_formats(response.json()) >= 6
    assert all(s["session_id"] == data["id"] for s in data["signins"])


SESSION_POSTS = [
    ("/session/switch-sign-in", {"sign_in_id": "1"}),
    ("/session/sign-out", {}),
    ("/session/sign-out", {"sign_in_id": "1"}),
    ("/session/switch-organization", {"organization_id": ACME}),
    ("/session/switch-workspace", {"workspace_id": ""}),
]


def test_one_401_for_every_cookie_problem_on_every_session_post(browser: Browser) -> None:
    # Given a session whose first cookie was replaced when Alice signed in
    revoked = new_token(browser.get_session())
    session = ok(browser.sign_in(ALICE))["id"]
    assert browser.token != revoked

    # When the route is called without a cookie, and with cookies that open nothing
    cookies: dict[str, str | bytes | None] = {
        "missing": None,
        "empty": b"session_id=",
        "garbage": b"session_id=not-a-token",
        "not ascii": b"session_id=caf\xe9",
        "too long": b"session_id=" + b"A" * 5000,
        "unknown": b"session_id=Zm-ahT34ZqMTWHc7mjCLr99SaRKKNnfXtwA-DTxEKUw",
        "the session id": f"session_id={session}".encode(),
        "revoked": f"session_id={revoked}".encode(),
    }
    responses = {}
    for route, params in SESSION_POSTS:
        for name, header in cookies.items():
            case = f"{route} {params} with cookie {name}"
            if header is None:
                browser.use_cookie(None)
                responses[case] = browser.post(route, **params)
            else:
                responses[case] = browser.send("POST", route, params=params, cookie_header=header)

    # Then each is 401 UNAUTHORIZED without a session or a cookie, all with one body
    for case, response in responses.items():
        assert refused(response, 401) == "UNAUTHORIZED", case
        assert response.json()["session"] is None, case
        assert session_cookie(response) is None, case
    assert len({r.content for r in responses.values()}) == 1


MISSES = {
    ("GET", "/nowhere"): (404, "NOT_FOUND"),
    ("POST", "/session/nowhere"): (404, "NOT_FOUND"),
    ("POST", "/session"): (405, "METHOD_NOT_ALLOWED"),
    ("DELETE", "/session"): (405, "METHOD_NOT_ALLOWED"),
    ("GET", "/session/switch-sign-in"): (405, "METHOD_NOT_ALLOWED"),
    ("GET", "/auth/signin"): (405, "METHOD_NOT_ALLOWED"),
}


def test_unknown_routes_and_methods_answer_in_the_envelope(browser: Browser) -> None:
    # Given a browser with a session
    browser.session()

    # When it calls routes that do not exist, or with the wrong method
    responses = {call: browser.send(*call) for call in MISSES}

    # Then each answer is the failure envelope with the matching status and code
    found = {call: (r.status_code, refused(r, r.status_code)) for call, r in responses.items()}
    assert found == MISSES


MALFORMED_BODIES: dict[str, tuple[str, bytes]] = {
    "broken json": ("application/json", b'{"email": '),
    "json": ("application/json", b'{"email": "a@b.c", "password": "p", "strategy": "x"}'),
    "json array": ("application/json", b"[1, 2"),
    "multipart without boundary": ("multipart/form-data", b"garbage"),
    "broken multipart": ("multipart/form-data; boundary=xx", b"--xx\r\nnonsense"),
    "not utf-8": ("application/x-www-form-urlencoded", b"email=\xff\xfe&password=\xff"),
    "binary": ("application/x-www-form-urlencoded", bytes(range(256))),
    "form of nothing": ("application/x-www-form-urlencoded", b"&&==&="),
    "unknown type": ("application/x-unknown", b"\x00\x01"),
}


@pytest.mark.parametrize(
    "route", ["/auth/signin", "/session/switch-sign-in", "/session/switch-organization"]
)
def test_a_malformed_body_is_never_a_422_or_a_500(browser: Browser, route: str) -> None:
    # Given a browser with a session and Alice signed in
    browser.signed_in(ALICE)

    # When it posts bodies that are not what any route expects
    statuses = {}
    for name, (content_type, body) in MALFORMED_BODIES.items():
        response = browser.send("POST", route, content=body, headers={"content-type": content_type})
        # Then each answer is an envelope: refused with a 400, or ignored
        statuses[name] = envelope(response, response.status_code)["status"]
    assert set(statuses.values()) <= {200, 400}, statuses


def test_a_file_in_place_of_a_field_is_an_invalid_request(browser: Browser) -> None:
    # Given an anonymous session
    browser.session()

    # When the password comes as a file upload
    response = browser.send(
        "POST",
        "/auth/signin",
        data={"email": ALICE[0], "strategy": "plain_email"},
        files={"password": ("password.txt", ALICE[1].encode())},
    )

    # Then it is a 400 INVALID_REQUEST that does not echo it
    assert refused(response, 400) == "INVALID_REQUEST"
    assert ALICE[1] not in response.text


SECRET_KEYS = ("password", "hash", "token", "secret", "otp", "verification")


def test_no_secret_is_ever_in_a_response_body(stack: Stack) -> None:
    # Given two browsers that go through every route, succeeding and failing
    first, second = stack.browser, stack.open_browser()
    for browser in (first, second):
        browser.get_session()
        browser.sign_in(ALICE, password="wrong-password-guess")
        browser.sign_in(("ghost@example.com", "ghost-password", ""))
        browser.send("POST", "/auth/signin", data={"email": ALICE[0], "password": "p"})
        browser.signed_in(ALICE)
        browser.sign_in(ALICE)
        browser.signed_in(BOB)
        browser.switch_workspace(ACME_WEB)
        browser.switch_organization(ACME)
        browser.switch_sign_in(sign_in_of(browser.session(), ALICE)["id"])
        browser.switch_sign_in("1")
        browser.sign_out(sign_in_of(browser.session(), BOB)["id"])
        browser.signed_in(CAROL)
        browser.sign_out()
        browser.get_session()
    responses = first.responses + second.responses
    tokens = {cookie.value for r in responses if (cookie := session_cookie(r)) is not None}
    assert len(tokens) >= 8

    # Then no body holds a password, a cookie token, a hash, or a field named for a secret
    secrets = [u[1] for u in (ALICE, BOB, CAROL)] + ["wrong-password-guess", "ghost-password"]
    for response in responses:
        body = response.text
        for secret in [*secrets, *tokens, "$argon2"]:
            assert secret not in body, (response.request.url, secret)
        for key, _ in fields_of(response.json()):
            assert not any(word in key.lower() for word in SECRET_KEYS), key
