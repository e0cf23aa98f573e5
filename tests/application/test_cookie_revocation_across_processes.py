"""A cookie revoked by one process is refused at once by another that found it valid before.

Each process remembers the tokens it found valid, with their versions, and on the next
request reads only the version of the token's last event. Given two services on one durable
store, the second having resolved a browser's cookie, when the browser signs in through the
first (its cookie is replaced and the old one revoked), then the second refuses the old
cookie on its next request and resolves the new one; a token it never saw, and the same
cookie presented again, behave as before.
"""

from __future__ import annotations

import pytest

from application.errors import Unauthorized
from tests.e2e.harness import open_stack
from tests.e2e.wire import new_token
from tests.helpers import ALICE, services_for


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
