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
from tests.helpers import ALICE, BOB, services_for


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
