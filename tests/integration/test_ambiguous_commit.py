"""An append whose commit answer is lost is neither lost nor doubled, nor refused, whether
it was made from a thread or from the event loop (the switch).

At a failover, or when a network cut falls between the server's commit and its answer, the
client cannot know whether its append was written. The recorder retries it; finding its own
events already recorded, byte for byte, it takes them as committed instead of failing with a
conflict (which the command would have turned into a wrong 400, USER_ALREADY_SIGNED_IN).
A proxy in front of the real PostgreSQL server makes the fault on purpose (tests/pg_proxy.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from api.app import create_app
from tests.cluster.checks import assert_audit_verifies, history_of
from tests.helpers import ALICE, BOB, services_for
from tests.pg_proxy import PgProxy, pg_proxy
from tests.serving import serving

pytestmark = pytest.mark.postgres


@pytest.fixture
def proxy(postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[PgProxy]:
    # The proxy reads the protocol, so the connections through it stay plain text.
    monkeypatch.setenv("PGSSLMODE", "disable")
    monkeypatch.setenv("PGGSSENCMODE", "disable")
    server = urlsplit(postgres_url)
    assert server.hostname
    assert server.port
    with pg_proxy((server.hostname, server.port), doom_statement=b"append_sealed") as made:
        yield made


def _through(proxy: PgProxy, url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"postgres@127.0.0.1:{proxy.port}"))


def _sign_in(http: httpx.Client, user: tuple[str, str, str]) -> httpx.Response:
    form = {"email": user[0], "password": user[1], "strategy": "plain_email"}
    return http.post("/auth/signin", data=form)


def _sign_in_ids(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    return {s["user_id"]: s["id"] for s in data["signins"]}


def test_a_lost_commit_answer_is_taken_as_committed_once(proxy: PgProxy, postgres_url: str) -> None:
    settings: dict[str, Any] = {"cookie_secure": False}
    with (
        services_for(_through(proxy, postgres_url), **settings) as services,
        serving(create_app(services=services)) as base,
        httpx.Client(base_url=base, timeout=60) as http,
    ):
        # Given Alice signed in
        first = _sign_in(http, ALICE)
        session_id = int(first.json()["data"]["id"])
        _sign_in_ids(first)

        # When Bob signs in and the answer to the commit of his sign-in is lost
        proxy.arm()
        both = _sign_in(http, BOB)

        # Then the sign-in succeeds, once: the retried append found its own events
        assert proxy.answers_lost == 1
        ids = _sign_in_ids(both)
        assert set(ids) == {ALICE[2], BOB[2]}
        assert both.json()["data"]["active_signin_id"] == ids[BOB[2]]

        # When the browser polls (its new cookie is then remembered), then switches to Alice
        # on the event loop, and that commit's answer is lost
        assert http.get("/session").status_code == 200
        at_once = services.auth.work.decided_at_once
        proxy.arm()
        switched = http.post("/session/switch-sign-in", params={"sign_in_id": ids[ALICE[2]]})

        # Then the switch succeeds, once, decided on the loop and retried from a thread
        assert proxy.answers_lost == 2
        assert switched.status_code == 200, switched.text
        assert switched.json()["data"]["active_signin_id"] == ids[ALICE[2]]
        assert services.auth.work.decided_at_once == at_once + 1

        # When Bob signs out and that commit's answer is lost too
        proxy.arm()
        after = http.post("/session/sign-out", params={"sign_in_id": ids[BOB[2]]})

        # Then the sign-out succeeds (not a 404 for a sign-in already ended)
        assert proxy.answers_lost == 3
        assert set(_sign_in_ids(after)) == {ALICE[2]}

        # and the history holds each write exactly once, in order, with no gap in versions
        history = history_of(services, session_id)
        assert history.count(("SignInCompleted", int(ids[BOB[2]]))) == 1
        assert history.count(("ActiveSignInSwitched", int(ids[ALICE[2]]))) == 1
        assert [kind for kind, _ in history] == [
            "SignInCompleted",
            "SignInCompleted",
            "ActiveSignInSwitched",
            "SignedOut",
        ]

    # and the audit chain verifies: nothing sealed twice, nothing skipped
    assert_audit_verifies({"SESSION_LEDGER_DATABASE_URL": postgres_url})
