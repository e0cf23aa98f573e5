"""A cookie revoked by one process is refused at once by another that found it valid before.

Each process remembers the tokens it found valid, with their versions, and on the next
request reads only the version of the token's last event. Given two services on one durable
store, the second having resolved a browser's cookie, when the browser signs in through the
first (its cookie is replaced and the old one revoked), then the second refuses the old
cookie on its next request and resolves the new one; a token it never saw, and the same
cookie presented again, behave as before. The same over HTTP, where GET /session and GET
/session/token check a remembered cookie in the statement that reads the session: the
second server answers the old cookie with a new anonymous session, and 401 for a token.
"""

from __future__ import annotations

import pytest

from application.errors import Unauthorized
from tests.e2e.harness import open_stack
from tests.e2e.wire import new_token
from tests.helpers import ALICE, BOB, CAROL, services_for


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
def test_a_revocation_elsewhere_is_refused_at_once(
    store: str, request: pytest.FixtureRequest
) -> None:
    url = str(request.getfixturevalue(f"{store}_url"))
    with open_stack(url) as first, services_for(url, load_demo=False) as second:
        browser = first.browser
        old = new_token(browser.get_session())
        session_id = second.tokens.resolve(old)
        assert second.tokens.resolve(old) == session_id  # remembered, still current

        signed_in = browser.sign_in(ALICE)
        assert signed_in.status_code == 200, signed_in.text
        assert browser.token not in (None, old)

        with pytest.raises(Unauthorized):
            second.tokens.resolve(old)
        assert second.tokens.resolve(browser.token or "") == session_id
        with pytest.raises(Unauthorized):
            second.tokens.resolve("never-issued-" + old)


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
def test_a_revocation_elsewhere_is_refused_at_once_over_http(
    store: str, request: pytest.FixtureRequest
) -> None:
    url = str(request.getfixturevalue(f"{store}_url"))
    with open_stack(url) as first, open_stack(url, load_demo=False) as second:
        signed = first.browser
        signed.signed_in(ALICE)
        old = signed.token or ""
        elsewhere = second.browser
        elsewhere.use_cookie(old)
        session = elsewhere.session()  # resolved, then remembered, by the second server
        assert [s["user_id"] for s in session["signins"]] == [ALICE[2]]
        assert elsewhere.send("GET", "/session/token").status_code == 200
        assert elsewhere.session()["id"] == session["id"]  # the remembered path

        assert signed.sign_in(BOB).status_code == 200  # replaces and revokes the cookie
        new = signed.token or ""
        assert new not in ("", old)

        elsewhere.use_cookie(old)
        assert elsewhere.send("GET", "/session/token").status_code == 401
        elsewhere.use_cookie(old)
        fresh = elsewhere.get_session()
        assert fresh.status_code == 200
        assert fresh.json()["data"]["id"] != session["id"]
        assert fresh.json()["data"]["signins"] == []
        elsewhere.use_cookie(new)
        assert elsewhere.session()["id"] == session["id"]
        assert elsewhere.send("GET", "/session/token").status_code == 200


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
def test_a_switch_with_a_cookie_revoked_elsewhere_is_refused_and_records_nothing(
    store: str, request: pytest.FixtureRequest
) -> None:
    """The switch does not read a remembered cookie's token again: its append checks it
    (PostgreSQL: in the append function's round trip; SQLite: in the write transaction),
    and a switch that appends nothing (to the sign-in already active, to a sign-in that
    is not there) reads it. A revoked cookie gets 401 either way, with nothing recorded."""
    url = str(request.getfixturevalue(f"{store}_url"))
    with open_stack(url) as first, open_stack(url, load_demo=False) as second:
        signed = first.browser
        alice = signed.signed_in(ALICE)["id"]
        bob = signed.signed_in(BOB)["id"]
        old = signed.token or ""
        elsewhere = second.browser
        elsewhere.use_cookie(old)
        switched = elsewhere.switch_sign_in(alice)  # resolved, then remembered, there
        assert switched.status_code == 200, switched.text
        assert elsewhere.switch_sign_in(bob).json()["data"]["active_signin_id"] == bob

        assert signed.sign_in(CAROL).status_code == 200  # replaces and revokes the cookie
        new = signed.token or ""
        assert new not in ("", old)
        recorded = first.events_recorded()

        # Alice would append a switch; Carol is active already; "1" is no sign-in here.
        for target in (alice, alice, signed.session()["active_signin_id"], "1"):
            elsewhere.use_cookie(old)
            refused = elsewhere.switch_sign_in(target)
            assert refused.status_code == 401, refused.text
            assert refused.json()["errors"][0]["code"] == "UNAUTHORIZED"
            assert refused.json()["session"] is None
        assert first.events_recorded() == recorded

        elsewhere.use_cookie(new)
        assert elsewhere.switch_sign_in(alice).json()["data"]["active_signin_id"] == alice
        assert elsewhere.switch_sign_in("1").status_code == 400
        assert first.events_recorded() == recorded + 1
