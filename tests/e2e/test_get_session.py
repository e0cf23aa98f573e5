"""GET /session and the ``session_id`` cookie it hands out."""

from __future__ import annotations

from tests.e2e.conftest import BuildStack
from tests.e2e.harness import Browser, Json, Stack
from tests.e2e.wire import assert_wire_formats, new_token, ok, session_cookie, token_bits
from tests.helpers import ALICE

ANONYMOUS: Json = {
    "signin_attempts": [],
    "signins": [],
    "signup_attempts": [],
    "active_signin_id": None,
    "active_signin": None,
}


def test_without_a_cookie_a_new_anonymous_session_is_started(browser: Browser) -> None:
    # Given a browser that holds no cookie
    browser.use_cookie(None)

    # When it asks for its session
    response = browser.get_session()

    # Then it gets a new anonymous session, and the cookie that opens it
    data = ok(response)
    assert {k: data[k] for k in ANONYMOUS} == ANONYMOUS
    assert set(data) == {"id", "created_at", "updated_at", *ANONYMOUS}
    assert 17 <= len(data["id"]) <= 20
    assert assert_wire_formats(data) == 3
    assert data["created_at"] == data["updated_at"]
    token = new_token(response)
    assert browser.token == token
    assert browser.session()["id"] == data["id"]


def test_with_a_valid_cookie_the_same_session_comes_back_and_no_cookie_is_set(
    browser: Browser,
) -> None:
    # Given a browser holding the cookie of a session
    first = ok(browser.get_session())
    token = browser.token

    # When it asks again
    response = browser.get_session()

    # Then it gets the same session, unchanged, and keeps its cookie
    assert ok(response) == first
    assert session_cookie(response) is None
    assert browser.token == token


BAD_COOKIE_HEADERS = {
    "empty": b"session_id=",
    "garbage": b"session_id=not-a-token",
    "too long": b"session_id=" + b"A" * 300,
    "random unknown token": b"session_id=Zm-ahT34ZqMTWHc7mjCLr99SaRKKNnfXtwA-DTxEKUw",
    "not ascii": b"session_id=caf\xe9",
    "quoted, with a space": b'session_id="a b"',
    "no value": b"session_id",
    "no name": b";;==;",
}


def test_a_cookie_that_opens_nothing_gets_a_new_session(browser: Browser) -> None:
    # Given a session exists
    existing = browser.session()["id"]

    # When browsers ask for their session with cookies that open nothing
    started = {}
    for name, header in BAD_COOKIE_HEADERS.items():
        response = browser.send("GET", "/session", cookie_header=header)
        data = ok(response)
        # Then each gets 200 with a new anonymous session, and a new cookie that opens it
        assert data["signins"] == [], name
        browser.use_cookie(new_token(response))
        assert browser.session()["id"] == data["id"], name
        started[name] = data["id"]
    assert existing not in started.values()
    assert len(set(started.values())) == len(started)


def test_the_session_id_itself_is_not_a_cookie(browser: Browser) -> None:
    # Given a session, and a browser that sends the session's id as the cookie
    session = browser.session()
    browser.use_cookie(session["id"])

    # When it asks for its session
    response = browser.get_session()

    # Then the id opens nothing: a new session is started
    assert ok(response)["id"] != session["id"]


def test_a_revoked_cookie_gets_a_new_session(browser: Browser) -> None:
    # Given a browser whose cookie was replaced when it signed in
    old_token = new_token(browser.get_session())
    session = ok(browser.sign_in(ALICE))
    assert browser.token != old_token

    # When the old cookie is sent again
    browser.use_cookie(old_token)
    response = browser.get_session()

    # Then it opens nothing: a new, anonymous session with a new cookie
    data = ok(response)
    assert data["id"] != session["id"]
    assert data["signins"] == []
    assert new_token(response) not in (old_token, None)


def test_the_cookie_flags(browser: Browser) -> None:
    # Given a browser without a cookie
    browser.use_cookie(None)

    # When a session is started for it
    cookie = session_cookie(browser.get_session())

    # Then the cookie is HttpOnly, Secure, SameSite=Lax, for the whole site
    assert cookie is not None
    assert {"httponly", "secure"} <= cookie.flags
    assert cookie.attributes["path"] == "/"
    assert cookie.attributes["samesite"].lower() == "lax"
    assert "domain" not in cookie.attributes


def test_the_secure_flag_can_be_turned_off_for_local_http(build_stack: BuildStack) -> None:
    # Given a service configured for plain-http development
    browser = build_stack(cookie_secure=False).browser

    # When a session is started
    cookie = session_cookie(browser.get_session())

    # Then the cookie is not Secure, and keeps its other flags
    assert cookie is not None
    assert "secure" not in cookie.flags
    assert "httponly" in cookie.flags
    assert cookie.attributes["samesite"].lower() == "lax"
    assert cookie.attributes["path"] == "/"


def test_the_cookie_is_an_opaque_random_token_not_the_session_id(stack: Stack) -> None:
    # Given several browsers that each start a session
    pairs = []
    for _ in range(5):
        browser = stack.open_browser()
        response = browser.get_session()
        pairs.append((ok(response)["id"], new_token(response)))

    # Then no cookie is, or contains, its session id, each carries at least 128 bits,
    # and no two are alike
    for session_id, token in pairs:
        assert session_id not in token
        assert token_bits(token) >= 128
    assert len({token for _, token in pairs}) == len(pairs)
