"""POST /auth/signin with ``plain_email``: adding an account to the browser's session."""

from __future__ import annotations

from datetime import datetime, timedelta

from tests.e2e.conftest import BuildStack
from tests.e2e.harness import Browser, Stack, sign_in_of
from tests.e2e.wire import new_token, ok, refused, session_cookie
from tests.helpers import ACME_DATA, ALICE, BOB, CAROL, GLOBEX


def test_plain_email_signs_in_at_once_and_makes_the_account_active(browser: Browser) -> None:
    # Given an anonymous session under a cookie
    session = browser.session()
    old = browser.token
    assert old is not None

    # When Alice signs in with her password
    response = browser.sign_in(ALICE)

    # Then her sign-in is in the same session, active, and the attempt is complete
    data = ok(response)
    assert data["id"] == session["id"]
    alice = sign_in_of(data, ALICE)
    assert data["active_signin_id"] == alice["id"]
    assert data["active_signin"] == alice
    assert alice["session_id"] == session["id"]
    assert alice["user"] is None or alice["user"]["id"] == ALICE[2]
    lifetime = datetime.fromisoformat(alice["expires_at"]) - datetime.fromisoformat(
        alice["created_at"]
    )
    assert lifetime == timedelta(days=30)
    [attempt] = data["signin_attempts"]
    assert (attempt["method"], attempt["completed"], attempt["current_step"]) == (
        "plain_email",
        True,
        None,
    )
    # and the cookie is replaced: the old one opens nothing any more
    token = new_token(response)
    assert token != old
    browser.use_cookie(old)
    assert refused(browser.switch_sign_in(alice["id"]), 401) == "UNAUTHORIZED"
    browser.use_cookie(token)
    assert browser.session() == data


def test_signing_in_without_a_cookie_starts_a_session(browser: Browser) -> None:
    # Given a browser without a cookie
    browser.use_cookie(None)

    # When Alice signs in
    response = browser.sign_in(ALICE)

    # Then a session holding her sign-in is started, and the cookie opens it
    data = ok(response)
    assert sign_in_of(data, ALICE)["id"] == data["active_signin_id"]
    assert browser.token == new_token(response)
    assert browser.session() == data


def test_a_second_account_joins_the_session_and_becomes_active(browser: Browser) -> None:
    # Given Alice signed in
    alice = browser.signed_in(ALICE)

    # When Bob signs in in the same browser
    data = ok(browser.sign_in(BOB))

    # Then both are live, and Bob is active
    assert [s["id"] for s in data["signins"]] == [alice["id"], sign_in_of(data, BOB)["id"]]
    assert data["active_signin"]["user_id"] == BOB[2]


def test_a_wrong_password_and_an_unknown_email_get_one_body(browser: Browser) -> None:
    # Given an anonymous session
    before = browser.session()
    token = browser.token

    # When Bob's email comes with a wrong password, and an unknown email with his password
    wrong_password = browser.sign_in(BOB, password="not-bobs-password")
    unknown_email = browser.sign_in(("nobody@example.com", BOB[1], ""))

    # Then both are the same INVALID_CREDENTIALS, byte for byte, with no hint of either
    assert refused(wrong_password, 400) == "INVALID_CREDENTIALS"
    assert unknown_email.content == wrong_password.content
    for secret in ["not-bobs-password", BOB[1], "nobody@example.com", BOB[0]]:
        assert secret not in wrong_password.text
    # and nobody was signed in, and the cookie stays
    assert session_cookie(wrong_password) is None
    assert browser.token == token
    after = browser.session()
    assert (after["signins"], after["active_signin_id"]) == ([], None)
    assert after["id"] == before["id"]


def test_a_failed_sign_in_without_a_cookie_names_only_a_session_the_browser_holds(
    browser: Browser,
) -> None:
    # Given a browser without a cookie
    browser.use_cookie(None)

    # When a sign-in fails
    response = browser.sign_in(ALICE, password="wrong")

    # Then the envelope names no session, or one whose cookie the browser was given
    assert refused(response, 400) == "INVALID_CREDENTIALS"
    named = response.json()["session"]
    if named is not None:
        assert browser.token == new_token(response)
        assert browser.session()["id"] == named["id"]


def test_the_same_account_cannot_sign_in_twice(browser: Browser) -> None:
    # Given Alice then Bob signed in
    browser.signed_in(ALICE)
    browser.signed_in(BOB)
    before = browser.session()

    # When Alice signs in again
    response = browser.sign_in(ALICE)

    # Then it is refused and nothing changed
    assert refused(response, 400) == "USER_ALREADY_SIGNED_IN"
    assert session_cookie(response) is None
    assert browser.session() == before


def test_an_account_signed_out_can_sign_in_again(browser: Browser) -> None:
    # Given Alice signed in and then out
    first = browser.signed_in(ALICE)
    ok(browser.sign_out(first["id"]))

    # When she signs in again
    again = browser.signed_in(ALICE)

    # Then it is a new sign-in
    assert again["id"] != first["id"]


def test_a_session_holds_at_most_the_configured_number_of_accounts(
    build_stack: BuildStack,
) -> None:
    # Given a service allowing two accounts per session, and Alice and Bob signed in
    browser = build_stack(max_sign_ins=2).browser
    browser.signed_in(ALICE)
    bob = browser.signed_in(BOB)
    before = browser.session()

    # When Carol signs in
    response = browser.sign_in(CAROL)

    # Then it is refused and nothing changed
    assert refused(response, 400) == "MAX_SIGN_INS_REACHED"
    assert browser.session() == before
    # but once Bob signs out, there is room for her
    ok(browser.sign_out(bob["id"]))
    assert browser.signed_in(CAROL)["user_id"] == CAROL[2]


INCOMPLETE_FORMS = {
    "no email": {"password": "s3cret-never-echoed", "strategy": "plain_email"},
    "empty email": {"email": "", "password": "s3cret-never-echoed", "strategy": "plain_email"},
    "no password": {"email": "echo-me-not@example.com", "strategy": "plain_email"},
    "empty password": {
        "email": "echo-me-not@example.com",
        "password": "",
        "strategy": "plain_email",
    },
    "huge password": {"email": ALICE[0], "password": "x" * 5000, "strategy": "plain_email"},
    "neither": {"strategy": "plain_email"},
}


def test_a_missing_field_is_an_invalid_request_that_echoes_nothing(browser: Browser) -> None:
    # Given an anonymous session
    before = browser.session()

    # When sign-in forms lack a field
    responses = {
        name: browser.send("POST", "/auth/signin", data=form)
        for name, form in INCOMPLETE_FORMS.items()
    }

    # Then each is a 400 INVALID_REQUEST that repeats none of the values sent
    codes = {name: refused(response, 400) for name, response in responses.items()}
    assert codes == dict.fromkeys(codes, "INVALID_REQUEST")
    for name, form in INCOMPLETE_FORMS.items():
        for value in form.values():
            if value not in ("", "plain_email", ALICE[0]):
                assert value not in responses[name].text, name
    assert browser.session() == before


def test_an_unknown_strategy_is_refused(browser: Browser) -> None:
    # Given an anonymous session
    before = browser.session()

    # When Alice signs in with her right password, but strategies the service does not offer
    responses = {}
    for strategy in [None, "", "password", "PLAIN_EMAIL", "plain_email ", "oauth_google"]:
        form = {"email": ALICE[0], "password": ALICE[1]}
        if strategy is not None:
            form["strategy"] = strategy
        responses[strategy] = browser.send("POST", "/auth/signin", data=form)

    # Then each is a 400 that signs nobody in, and does not echo the password
    codes = {strategy: refused(response, 400) for strategy, response in responses.items()}
    assert codes == dict.fromkeys(codes, "UNSUPPORTED_STRATEGY")
    assert not [s for s, response in responses.items() if ALICE[1] in response.text]
    assert browser.session() == before


def test_a_new_sign_in_starts_where_its_user_last_worked_in_any_session(stack: Stack) -> None:
    # Given Alice, in one browser, choosing the Acme Data workspace
    first = stack.browser
    first.signed_in(ALICE)
    chosen = ok(first.switch_workspace(ACME_DATA))["active_signin"]

    # When Alice, and Bob who never chose anything, sign in in another browser
    second = stack.open_browser()
    alice = second.signed_in(ALICE)
    bob = second.signed_in(BOB)

    # Then Alice starts in Acme Data (and Acme), and Bob in nothing
    for key in ["organization_membership", "workspace_membership"]:
        assert alice[f"active_{key}_id"] == chosen[f"active_{key}_id"]
        assert alice[f"active_{key}"] == chosen[f"active_{key}"]
    assert alice["active_workspace_membership"]["workspace_id"] == ACME_DATA
    assert bob["active_organization_membership"] is None
    assert bob["active_workspace_membership"] is None

    # When Alice then switches to Globex in the second browser, and clears it in a third
    ok(second.switch_sign_in(alice["id"]))
    ok(second.switch_organization(GLOBEX))
    first_alice = sign_in_of(first.session(), ALICE)
    ok(first.sign_out(first_alice["id"]))
    again = first.signed_in(ALICE)

    # Then her next sign-in starts in Globex, without a workspace
    assert again["active_organization_membership"]["organization_id"] == GLOBEX
    assert again["active_workspace_membership"] is None
    third = stack.open_browser()
    third.signed_in(ALICE)
    ok(third.switch_organization(""))
    assert stack.open_browser().signed_in(ALICE)["active_organization_membership"] is None
