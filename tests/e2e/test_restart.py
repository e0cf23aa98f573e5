"""A restart of the service keeps every session: the same cookie opens the same data."""

from __future__ import annotations

from tests.e2e.harness import Browser, Json, Stack, open_stack, sign_in_of
from tests.e2e.wire import ok, refused
from tests.helpers import ACME, ACME_DATA, ALICE, BOB, CAROL, GLOBEX


def reopen(stack: Stack, token: str | None) -> Browser:
    """A browser of ``stack`` holding a cookie kept from before the restart."""
    browser = stack.open_browser()
    browser.use_cookie(token)
    return browser


def test_a_restart_keeps_every_session(durable_database_url: str) -> None:
    # Given a service with three browsers: two accounts with chosen memberships, an
    # anonymous session, and one whose cookie was replaced when everyone signed out
    with open_stack(durable_database_url) as before:
        busy = before.browser
        busy.signed_in(ALICE)
        ok(busy.switch_workspace(ACME_DATA))
        bob = busy.signed_in(BOB)
        ok(busy.switch_organization(ACME))
        ok(busy.switch_sign_in(sign_in_of(busy.session(), ALICE)["id"]))
        anonymous = before.open_browser()
        assert anonymous.session()["signins"] == []
        emptied = before.open_browser()
        emptied.signed_in(CAROL)
        revoked = emptied.token
        ok(emptied.sign_out())
        kept: dict[str, tuple[str | None, Json]] = {
            name: (b.token, b.session())
            for name, b in {"busy": busy, "anonymous": anonymous, "emptied": emptied}.items()
        }
        clock = before.clock

    # When the service starts again on the same store (the directory is not reloaded)
    with open_stack(durable_database_url, clock=clock, load_demo=False) as after:
        # Then each old cookie opens the same session, with the same data
        for name, (token, data) in kept.items():
            assert reopen(after, token).session() == data, name
        # and the cookie replaced before the restart still opens nothing
        stranger = reopen(after, revoked)
        assert refused(stranger.sign_out(), 401) == "UNAUTHORIZED"
        # and the sessions go on: switching works, and Alice's choices are remembered
        browser = reopen(after, kept["busy"][0])
        assert ok(browser.switch_sign_in(bob["id"]))["active_signin"]["user_id"] == BOB[2]
        ok(browser.switch_sign_in(sign_in_of(browser.session(), ALICE)["id"]))
        ok(browser.switch_organization(GLOBEX))
        fresh = after.open_browser().signed_in(ALICE)
        assert fresh["active_organization_membership"]["organization_id"] == GLOBEX
