"""GET /session/token: a short-lived ES256 JWT for the active sign-in, checked against the JWKS."""

from __future__ import annotations

import os
import shutil
import subprocess
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from infrastructure.clock import SettableClock
from tests.auth.conftest import BuildStack
from tests.auth.support import jwks_keys, verified_claims
from tests.e2e.harness import Browser, Json, Stack, User, open_stack
from tests.e2e.wire import ok, refused
from tests.helpers import ACME, ACME_DATA, ACME_WEB, ALICE, BOB, GLOBEX

pytestmark = pytest.mark.slow  # a real SMTP server per test

LIFETIME = timedelta(seconds=60)
ISSUER = "http://127.0.0.1:8000"  # the default public URL
ACME_ADMIN = ["organization:admin", "organization:manage"]
ACME_MEMBER = ["organization:read"]
GLOBEX_MEMBER = ["organization:read"]
WEB_EDITOR = ["workspace:read", "workspace:write"]
DATA_VIEWER = ["workspace:read"]


def token_of(browser: Browser) -> tuple[str, int]:
    """The token GET /session/token hands out now, and its ``expires`` (epoch ms)."""
    data = ok(browser.send("GET", "/session/token"))
    assert set(data) == {"token", "expires"}, data
    assert isinstance(data["token"], str)
    assert isinstance(data["expires"], int)
    return data["token"], data["expires"]


def claims_now(stack: Stack, browser: Browser | None = None) -> Json:
    """The verified claims of a token issued now, checked against the clock and the session."""
    browser = browser or stack.browser
    token, expires = token_of(browser)
    claims = verified_claims(token, jwks_keys(browser), ISSUER)
    now = int(stack.clock.now().timestamp())
    assert claims["iat"] == now
    assert claims["exp"] == now + int(LIFETIME.total_seconds())
    assert expires == claims["exp"] * 1000
    assert claims["sid"] == browser.session()["id"]
    return claims


def context_of(claims: Json) -> tuple[str, object, object, list[str], list[str]]:
    """(sub, organization, workspace, organization permissions, workspace permissions)."""
    permissions = claims["permissions"]
    assert set(permissions) == {"organization", "workspace"}
    return (
        claims["sub"],
        claims["organization"],
        claims["workspace"],
        permissions["organization"],
        permissions["workspace"],
    )


def nothing_chosen(user: User) -> tuple[str, None, None, list[str], list[str]]:
    """The context of a user with no organization or workspace active."""
    return (user[2], None, None, [], [])


def test_without_an_active_sign_in_there_is_no_token(stack: Stack) -> None:
    # Given a browser without a cookie, then with an anonymous session
    browser = stack.browser
    assert refused(browser.send("GET", "/session/token"), 401) == "UNAUTHORIZED"
    browser.session()

    # When it asks for a token
    # Then it is 400 NO_ACTIVE_SIGN_IN
    assert refused(browser.send("GET", "/session/token"), 400) == "NO_ACTIVE_SIGN_IN"

    # And after its one sign-in is signed out, the same
    alice = browser.signed_in(ALICE)
    ok(browser.sign_out(alice["id"]))
    assert refused(browser.send("GET", "/session/token"), 400) == "NO_ACTIVE_SIGN_IN"


def test_the_token_follows_every_switch(stack: Stack) -> None:
    # Given Alice signed in, with nothing chosen yet
    browser = stack.browser
    alice = browser.signed_in(ALICE)
    claims = claims_now(stack)
    assert context_of(claims) == nothing_chosen(ALICE)

    # When she switches organization, then workspace, then organization again
    # Then the token issued right after each reflects it
    ok(browser.switch_organization(ACME))
    assert context_of(claims_now(stack)) == (ALICE[2], ACME, None, ACME_ADMIN, [])
    ok(browser.switch_workspace(ACME_WEB))
    assert context_of(claims_now(stack)) == (ALICE[2], ACME, ACME_WEB, ACME_ADMIN, WEB_EDITOR)
    ok(browser.switch_organization(GLOBEX))
    assert context_of(claims_now(stack)) == (ALICE[2], GLOBEX, None, GLOBEX_MEMBER, [])
    ok(browser.switch_workspace(ACME_DATA))
    assert context_of(claims_now(stack)) == (ALICE[2], ACME, ACME_DATA, ACME_ADMIN, DATA_VIEWER)

    # When Bob signs in, he is the subject, with his own (empty) context
    bob = browser.signed_in(BOB)
    assert context_of(claims_now(stack)) == nothing_chosen(BOB)
    ok(browser.switch_organization(ACME))
    assert context_of(claims_now(stack)) == (BOB[2], ACME, None, ACME_MEMBER, [])

    # When the browser switches back to Alice, her context comes back with her
    ok(browser.switch_sign_in(alice["id"]))
    assert context_of(claims_now(stack)) == (ALICE[2], ACME, ACME_DATA, ACME_ADMIN, DATA_VIEWER)

    # When she clears the workspace, both are cleared; likewise clearing the organization
    ok(browser.switch_workspace(""))
    assert context_of(claims_now(stack)) == nothing_chosen(ALICE)
    ok(browser.switch_organization(GLOBEX))
    ok(browser.switch_organization(""))
    assert context_of(claims_now(stack)) == nothing_chosen(ALICE)

    # And back on Bob, his organization is still his
    ok(browser.switch_sign_in(bob["id"]))
    assert context_of(claims_now(stack)) == (BOB[2], ACME, None, ACME_MEMBER, [])


def test_tokens_of_two_sessions_name_their_own_session(stack: Stack) -> None:
    # Given Alice signed in in two browsers
    first, second = stack.browser, stack.open_browser()
    first.signed_in(ALICE)
    second.signed_in(ALICE)

    # When each asks for a token
    # Then each names its own session, and the same user
    one, two = claims_now(stack, first), claims_now(stack, second)
    assert one["sid"] != two["sid"]
    assert one["sub"] == two["sub"] == ALICE[2]


def test_within_a_second_the_same_claims_get_the_same_token(stack: Stack) -> None:
    # Given Alice signed in, polling for tokens
    browser = stack.browser
    browser.signed_in(ALICE)
    first = claims_now(stack)
    token, _ = token_of(browser)

    # Within the second of issue, the same claims are the same token (one signature)
    assert token_of(browser)[0] == token
    assert verified_claims(token, jwks_keys(browser), ISSUER) == first

    # A second later the token is a new one, issued then
    stack.clock.advance(timedelta(seconds=1))
    later = claims_now(stack)
    assert token_of(browser)[0] != token
    assert later["iat"] == first["iat"] + 1


def test_an_unknown_template_is_not_found(stack: Stack) -> None:
    # Given Alice signed in
    browser = stack.browser
    browser.signed_in(ALICE)

    # When a token is asked for with a template the service does not have
    response = browser.send("GET", "/session/token", params={"template": "admin"})

    # Then it is 404 TEMPLATE_NOT_FOUND; the default template is the plain token
    assert refused(response, 404) == "TEMPLATE_NOT_FOUND"
    ok(browser.send("GET", "/session/token", params={"template": "default"}))


def test_a_rotated_key_stays_published_until_its_tokens_expire(stack: Stack) -> None:
    # Given a token signed with the current key
    browser = stack.browser
    browser.signed_in(ALICE)
    old_token, _ = token_of(browser)
    old_kid = jwt.get_unverified_header(old_token)["kid"]

    # When the keys are rotated
    new_kid = stack.services.keys.rotate()

    # Then new tokens are signed with the new key, and both keys are published
    new_token, _ = token_of(browser)
    assert new_kid != old_kid
    assert jwt.get_unverified_header(new_token)["kid"] == new_kid
    keys = jwks_keys(browser)
    assert set(keys) == {old_kid, new_kid}
    verified_claims(old_token, keys, ISSUER)
    verified_claims(new_token, keys, ISSUER)
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(old_token, keys[new_kid], algorithms=["ES256"], options={"verify_exp": False})

    # When just under a token lifetime has passed, the old key is still there
    stack.clock.advance(LIFETIME - timedelta(seconds=1))
    assert set(jwks_keys(browser)) == {old_kid, new_kid}

    # When a token lifetime has passed, it is gone
    stack.clock.advance(timedelta(seconds=1))
    assert set(jwks_keys(browser)) == {new_kid}
    verified_claims(token_of(browser)[0], jwks_keys(browser), ISSUER)


EXE = shutil.which("session-ledger")


@pytest.mark.skipif(EXE is None, reason="session-ledger is not installed (pip install -e .)")
def test_the_cli_rotates_the_key_of_a_running_service(sqlite_url: str) -> None:
    # Given a service on a SQLite file, its clock on the wall clock (the CLI uses that one)
    clock = SettableClock(datetime.now(UTC))
    with open_stack(sqlite_url, clock=clock) as stack:
        browser = stack.browser
        browser.signed_in(ALICE)
        old_token, _ = token_of(browser)
        old_kid = jwt.get_unverified_header(old_token)["kid"]

        # When an operator runs `session-ledger keys rotate` on the same database
        assert EXE is not None
        done = subprocess.run(
            [EXE, "keys", "rotate"],
            env={**os.environ, "SESSION_LEDGER_DATABASE_URL": sqlite_url},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

        # Then it names the new key, which signs the service's next token
        assert done.returncode == 0, done.stderr
        new_kid = done.stdout.split()[-1]
        assert new_kid != old_kid
        new_token, _ = token_of(browser)
        assert jwt.get_unverified_header(new_token)["kid"] == new_kid

        # And the old key stays published until a token lifetime has passed, then goes
        keys = jwks_keys(browser)
        assert set(keys) == {old_kid, new_kid}
        verified_claims(old_token, keys, ISSUER)
        verified_claims(new_token, keys, ISSUER)
        stack.clock.advance(LIFETIME + timedelta(seconds=5))
        assert set(jwks_keys(browser)) == {new_kid}


def test_a_longer_token_lifetime_is_honoured(build_stack: BuildStack) -> None:
    # Given tokens that last five minutes
    stack = build_stack(token_lifetime_seconds=300)
    browser = stack.browser
    browser.signed_in(ALICE)

    # When a token is issued
    token, expires = token_of(browser)
    claims = verified_claims(token, jwks_keys(browser), ISSUER)

    # Then it expires five minutes after it was issued
    assert claims["exp"] - claims["iat"] == 300
    assert expires == claims["exp"] * 1000
