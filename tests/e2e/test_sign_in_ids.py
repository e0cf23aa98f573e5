"""The one 400 INVALID_SIGN_IN_ID of switch-sign-in and sign-out, whatever is wrong with the id.

The answer must never tell whether an id exists elsewhere, so every refusal is compared byte
for byte with the refusal of an id that never existed, in the same session at the same time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import httpx
import pytest

from tests.e2e.conftest import BuildStack
from tests.e2e.harness import Browser, Json
from tests.e2e.wire import malformed_spellings, ok, refused, session_cookie
from tests.helpers import ALICE, BOB, CAROL

LIFETIME = timedelta(hours=1)
ROUTES = ["/session/switch-sign-in", "/session/sign-out"]


@dataclass
class Given:
    """A session with Alice (inactive) and Bob (active) live, and ids that are not live."""

    browser: Browser
    alice: str
    bob: str
    expired: str
    signed_out: str
    elsewhere: str
    before: Json

    def refuse(self, route: str, **params: str) -> httpx.Response:
        """Post ``route`` and insist that it is refused and changes nothing."""
        response = self.browser.post(route, **params)
        assert refused(response, 400) == "INVALID_SIGN_IN_ID", response.text
        assert session_cookie(response) is None
        assert response.json()["session"]["id"] == self.before["id"]
        assert self.browser.session() == self.before
        return response

    def reference(self, route: str) -> bytes:
        """The refusal of an id that never existed."""
        return self.refuse(route, sign_in_id="1").content


@pytest.fixture
def given(build_stack: BuildStack) -> Given:
    stack = build_stack(sign_in_lifetime_seconds=int(LIFETIME.total_seconds()))
    browser = stack.browser
    expired = browser.signed_in(CAROL)["id"]
    stack.clock.advance(LIFETIME * 2 / 3)
    alice = browser.signed_in(ALICE)["id"]
    bob = browser.signed_in(BOB)["id"]
    stack.clock.advance(LIFETIME / 2)  # Carol's first sign-in is past its lifetime
    signed_out = browser.signed_in(CAROL)["id"]
    ok(browser.sign_out(signed_out))
    ok(browser.switch_sign_in(bob))
    elsewhere = stack.open_browser().signed_in(ALICE)["id"]
    before = browser.session()
    assert before["active_signin_id"] == bob
    assert {s["id"] for s in before["signins"]} == {alice, bob}
    return Given(browser, alice, bob, expired, signed_out, elsewhere, before)


@pytest.mark.parametrize("route", ROUTES)
def test_a_malformed_id_gets_the_same_body_as_an_unknown_one(given: Given, route: str) -> None:
    # Given the body of the refusal of an id that never existed
    reference = given.reference(route)

    # When the id is malformed, in every way that could still read as a live id
    responses = {
        name: given.refuse(route, sign_in_id=raw)
        for name, raw in malformed_spellings(given.alice).items()
    }

    # Then every refusal is byte for byte the same, and nothing changed
    assert {name: r.text for name, r in responses.items() if r.content != reference} == {}


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("kind", ["expired", "signed_out", "elsewhere"])
def test_an_id_that_is_not_live_here_gets_the_same_body_as_an_unknown_one(
    given: Given, route: str, kind: str
) -> None:
    # Given the body of the refusal of an id that never existed
    reference = given.reference(route)

    # When the id is of an expired sign-in, a signed-out one, or another session's live one
    response = given.refuse(route, sign_in_id=getattr(given, kind))

    # Then the body is byte for byte the same, and nothing changed
    assert response.content == reference


def test_switch_sign_in_without_an_id_gets_the_same_body(given: Given) -> None:
    # Given the body of the refusal of an id that never existed
    reference = given.reference("/session/switch-sign-in")

    # When the parameter is missing altogether
    response = given.refuse("/session/switch-sign-in")

    # Then the refusal is the same
    assert response.content == reference


def test_an_unknown_id_of_snowflake_size_gets_the_same_body(given: Given) -> None:
    # Given the body of the refusal of a small id that never existed
    reference = given.reference("/session/switch-sign-in")

    # When the unknown id looks like a real one (one more than a live id)
    unknown = str(int(given.alice) + 1)
    assert unknown not in (given.bob, given.elsewhere)
    response = given.refuse("/session/switch-sign-in", sign_in_id=unknown)

    # Then the refusal is the same
    assert response.content == reference
