"""POST /session/sign-out: of one account, or of all; and the cookie turning over each time."""

from __future__ import annotations

from tests.e2e.harness import Browser, sign_in_of
from tests.e2e.wire import new_token, ok, refused, session_cookie
from tests.helpers import ALICE, BOB


def test_signing_out_the_active_account_leaves_none_active(browser: Browser) -> None:
    # Given Alice then Bob signed in, Bob active
    alice = browser.signed_in(ALICE)
    bob = browser.signed_in(BOB)

    # When Bob signs out
    data = ok(browser.sign_out(bob["id"]))

    # Then Alice is still signed in, and no account is active
    assert [s["id"] for s in data["signins"]] == [alice["id"]]
    assert data["active_signin_id"] is None
    assert data["active_signin"] is None
    assert browser.session() == data


def test_signing_out_another_account_keeps_the_active_one(browser: Browser) -> None:
    # Given Alice then Bob signed in, Bob active
    alice = browser.signed_in(ALICE)
    bob = browser.signed_in(BOB)

    # When Alice signs out
    data = ok(browser.sign_out(alice["id"]))

    # Then Bob is still signed in and still active (the real service would clear it)
    assert [s["id"] for s in data["signins"]] == [bob["id"]]
    assert data["active_signin_id"] == bob["id"]
    assert data["active_signin"] == sign_in_of(data, BOB)


def test_signing_out_of_everything_keeps_the_session_anonymous(browser: Browser) -> None:
    # Given Alice and Bob signed in
    session = browser.session()
    browser.signed_in(ALICE)
    browser.signed_in(BOB)

    # When the browser signs out without naming a sign-in
    response = browser.sign_out()

    # Then the same session is left, with no account in it, under a new cookie
    data = ok(response)
    assert data["id"] == session["id"]
    assert data["signins"] == []
    assert data["active_signin_id"] is None
    assert data["active_signin"] is None
    assert browser.token == new_token(response)
    assert browser.session() == data


def test_signing_out_turns_the_cookie_over(browser: Browser) -> None:
    # Given Alice and Bob signed in under a cookie
    session = browser.session()
    alice = browser.signed_in(ALICE)
    browser.signed_in(BOB)
    old = browser.token
    assert old is not None

    # When Alice signs out
    response = browser.sign_out(alice["id"])

    # Then a new cookie opens the same session
    token = new_token(response)
    assert token != old
    assert browser.session()["id"] == session["id"]
    # and the old cookie no longer opens anything: 401 on POST, a new session on GET
    browser.use_cookie(old)
    assert refused(browser.sign_out(), 401) == "UNAUTHORIZED"
    assert ok(browser.get_session())["id"] != session["id"]
    browser.use_cookie(token)
    assert sign_in_of(browser.session(), BOB)


def test_signing_out_of_everything_turns_the_cookie_over(browser: Browser) -> None:
    # Given Alice signed in under a cookie
    session = browser.signed_in(ALICE)["session_id"]
    old = browser.token
    assert old is not None

    # When the browser signs out of everything
    token = new_token(browser.sign_out())

    # Then only the new cookie opens the session
    browser.use_cookie(old)
    assert refused(browser.switch_organization(""), 401) == "UNAUTHORIZED"
    assert ok(browser.get_session())["id"] != session
    browser.use_cookie(token)
    assert browser.session()["id"] == session


def test_signing_out_of_an_empty_session_changes_nothing(browser: Browser) -> None:
    # Given an anonymous session
    session = browser.session()
    token = browser.token

    # When the browser signs out of everything
    response = browser.sign_out()

    # Then it succeeds, and nothing changed: the same session, the same cookie
    assert ok(response) == session
    assert session_cookie(response) is None
    assert browser.token == token
