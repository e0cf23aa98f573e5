"""The hot routes (GET /session, GET /session/token, the switch) answer the same whether
``api.hot_routes`` serves them or FastAPI's stack does.

A request in the common shape (no query, or the route's one parameter once) takes the hot
lane; adding an unknown parameter, which every route ignores, sends the same request down
FastAPI's stack. Each case sends both and compares status, headers and body.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from api.hot_routes import ROUTES
from tests.e2e.conftest import BuildStack
from tests.e2e.harness import Browser
from tests.helpers import ALICE, BOB

PARTNER = "https://partner.example"
# Headers that differ between any two answers: their date, their id, the new JWT's length.
VARYING = {"date", "x-request-id", "content-length"}


def both_ways(browser: Browser, method: str, path: str, **params: str) -> list[httpx.Response]:
    """The request through the hot lane, then through FastAPI's stack."""
    return [
        browser.send(method, path, params=params, headers={"X-Request-Id": "hot-lane-test"}),
        browser.send(method, path, params={**params, "unused": "1"}),
    ]


def comparable(headers: httpx.Headers) -> dict[str, str]:
    """The headers two answers must share; a new cookie's attributes but not its value."""
    shared = {k: v for k, v in headers.items() if k not in VARYING}
    if "set-cookie" in shared:
        shared["set-cookie"] = shared["set-cookie"].split(";", 1)[1]
    return shared


def same_answer(hot: httpx.Response, full: httpx.Response) -> dict[str, Any]:
    """Assert the two answers agree; the hot one's body."""
    assert hot.status_code == full.status_code, (hot.text, full.text)
    assert comparable(hot.headers) == comparable(full.headers)
    body: dict[str, Any] = hot.json()
    assert body.keys() == full.json().keys()
    return body


@pytest.mark.parametrize(
    ("query", "arguments"),
    [
        (b"", ()),
        (b"sign_in_id=42", ("42",)),
        (b"sign_in_id=%34%32", ("42",)),
        (b"sign_in_id=", None),
        (b"sign_in_id=1&sign_in_id=2", None),
        (b"sign_in_id=1&unused=1", None),
        (b"__dev_session__=abc", None),
    ],
)
def test_only_the_common_shape_takes_the_hot_lane(query: bytes, arguments: Any) -> None:
    assert ROUTES[("POST", "/session/switch-sign-in")].arguments(query) == arguments


def test_get_session_answers_alike(browser: Browser) -> None:
    # Given a signed-in browser
    browser.signed_in(ALICE)

    # When it reads its session both ways; then both answer alike, with the request's id
    hot, full = both_ways(browser, "GET", "/session")
    assert same_answer(hot, full)["data"] == full.json()["data"]
    assert hot.headers["x-request-id"] == "hot-lane-test"
    assert hot.headers["content-type"] == "application/json"

    # and a browser without a cookie gets a new session and its cookie either way
    browser.use_cookie(None)
    hot = browser.get_session()
    browser.use_cookie(None)
    full = browser.send("GET", "/session", params={"unused": "1"})
    same_answer(hot, full)
    assert "set-cookie" in hot.headers
    assert "set-cookie" in full.headers


def test_session_token_answers_alike(browser: Browser) -> None:
    browser.signed_in(ALICE)
    hot, full = both_ways(browser, "GET", "/session/token")
    body = same_answer(hot, full)
    assert body["data"]["token"].count(".") == 2
    assert body["session"] == full.json()["session"]

    # an unknown template is a 404 either way
    hot, full = both_ways(browser, "GET", "/session/token", template="other")
    assert same_answer(hot, full)["errors"] == full.json()["errors"]
    assert hot.status_code == 404


def test_switch_answers_alike(browser: Browser) -> None:
    # Given Alice then Bob signed in
    alice = browser.signed_in(ALICE)
    bob = browser.signed_in(BOB)

    # When the browser switches to Alice through the hot lane, then to Bob through the stack
    hot = browser.switch_sign_in(alice["id"])
    full = browser.post("/session/switch-sign-in", sign_in_id=bob["id"], unused="1")

    # Then each made its target active, with the same headers and envelope
    same_answer(hot, full)
    assert hot.json()["data"]["active_signin_id"] == alice["id"]
    assert full.json()["data"]["active_signin_id"] == bob["id"]


@pytest.mark.parametrize(
    ("method", "path", "params"),
    [
        ("POST", "/session/switch-sign-in", {"sign_in_id": "not-a-number"}),
        ("POST", "/session/switch-sign-in", {}),
        ("GET", "/session/token", {}),
    ],
)
def test_refusals_answer_alike(
    browser: Browser, method: str, path: str, params: dict[str, str]
) -> None:
    # A signed-in browser's malformed switch, and cookieless calls that need a session
    browser.signed_in(ALICE)
    if path == "/session/token":
        browser.use_cookie("forged")
    hot, full = both_ways(browser, method, path, **params)
    body = same_answer(hot, full)
    assert hot.status_code in (400, 401)
    assert body["errors"] == full.json()["errors"]
    assert body["session"] == full.json()["session"]


def test_cross_site_switches_are_refused_on_the_hot_lane(browser: Browser) -> None:
    alice = browser.signed_in(ALICE)
    browser.signed_in(BOB)
    before = browser.session()
    answers = [
        browser.send(
            "POST",
            "/session/switch-sign-in",
            params={"sign_in_id": alice["id"], **extra},
            headers={"Origin": "https://evil.example"},
        )
        for extra in ({}, {"unused": "1"})
    ]
    body = same_answer(*answers)
    assert answers[0].status_code == 403
    assert body["errors"][0]["code"] == "FORBIDDEN_ORIGIN"
    assert browser.session()["active_signin_id"] == before["active_signin_id"]


@pytest.mark.parametrize("origin", [PARTNER, "https://elsewhere.example"])
def test_cors_headers_are_alike_for_allowed_and_other_origins(
    build_stack: BuildStack, origin: str
) -> None:
    # Given a service that lets PARTNER's pages call it with credentials
    browser = build_stack(allowed_origins=[PARTNER]).browser
    alice = browser.signed_in(ALICE)
    browser.signed_in(BOB)
    asked = {"Origin": origin, "X-Request-Id": "hot-lane-test"}

    # When each hot route is called from the origin, both ways
    for method, path, params in [
        ("GET", "/session", {}),
        ("GET", "/session/token", {}),
        ("POST", "/session/switch-sign-in", {"sign_in_id": alice["id"]}),
        ("POST", "/session/switch-sign-in", {"sign_in_id": "not-a-number"}),
    ]:
        hot = browser.send(method, path, params=params, headers=asked)
        full = browser.send(method, path, params={**params, "unused": "1"}, headers=asked)

        # Then the answers carry the same CORS headers (none but Vary for another origin)
        same_answer(hot, full)
        assert hot.headers["x-request-id"] == full.headers["x-request-id"] == "hot-lane-test"
        assert "origin" in hot.headers["vary"].lower()
        allowed = hot.headers.get("access-control-allow-origin")
        assert allowed == (origin if origin == PARTNER else None), (path, hot.headers)
        assert (hot.headers.get("access-control-allow-credentials") == "true") == (
            allowed is not None
        )
