"""The admin API over HTTP: who may call it, and what each route answers.

The routes exist only with an admin token; the token is a bearer token or the Basic password.
Events come in order with their request context (address kept as configured, user agent,
the request id the answer carried) and never a password, code or cookie token.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from application.read_model import rfc3339
from tests.audit.support import ADMIN, TOKEN, admin_data, admin_get, session_events
from tests.e2e.harness import START, Browser, Json, Stack, open_stack, sign_in_of
from tests.helpers import ACME, ACME_WEB, ALICE, BOB, CAROL

ADMIN_PATHS = [
    "/admin/audit/verify",
    "/admin/sessions/123/events",
    "/admin/sessions/123/state?version=1",
    "/admin/sessions/123/timeline",
    "/admin/users/123/sign-ins",
]
MALFORMED_IDS = ["abc", "0", "01", "-1", "1.0", "%201", "18446744073709551616", "0x10"]
STEP = timedelta(minutes=1)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["status"] == status
    assert body["data"] is None
    assert [e["code"] for e in body["errors"]] == [code]


@contextmanager
def browser_at(stack: Stack, address: str, agent: str = "AuditTest/1.0") -> Iterator[Browser]:
    """A browser whose requests come from ``address``, with its own cookie jar."""
    client = TestClient(
        stack.app,
        base_url="https://testserver",
        client=(address, 50000),
        headers={"User-Agent": agent},
    )
    try:
        yield Browser(client)
    finally:
        client.close()


# Who may call -------------------------------------------------------------------------


def test_without_an_admin_token_the_admin_routes_do_not_exist(durable_database_url: str) -> None:
    with open_stack(durable_database_url) as stack:
        for path in ADMIN_PATHS:
            for headers in ({}, ADMIN, {"Authorization": basic("auditor", TOKEN)}):
                response = stack.browser.send("GET", path, headers=headers)
                assert_error(response, 404, "NOT_FOUND")
        paths = stack.browser.send("GET", "/openapi.json").json()["paths"]
        assert not [p for p in paths if p.startswith("/admin")]


WRONG_AUTHORIZATIONS = [
    None,
    "Bearer wrong-token",
    "Bearer ",
    f"Bearer {TOKEN}x",
    f"Token {TOKEN}",
    basic("auditor", "wrong-token"),
    basic(TOKEN, ""),  # the token as the user name is not the password
    "Basic " + base64.b64encode(TOKEN.encode()).decode(),  # no colon, no password
    "Basic !!!not-base64!!!",
    "Basic " + base64.b64encode(b"auditor:\xff\xfe").decode(),  # not UTF-8
]


def test_a_missing_or_wrong_token_is_401_with_a_basic_challenge(
    durable_database_url: str,
) -> None:
    with open_stack(durable_database_url, admin_token=TOKEN) as stack:
        for authorization in WRONG_AUTHORIZATIONS:
            headers = {"Authorization": authorization} if authorization is not None else {}
            for path in ADMIN_PATHS:
                response = stack.browser.send("GET", path, headers=headers)
                assert_error(response, 401, "UNAUTHORIZED")
                challenge = response.headers.get("www-authenticate", "")
                assert challenge.startswith('Basic realm="'), (authorization, challenge)


def test_the_token_works_as_a_bearer_token_and_as_the_basic_password(
    durable_database_url: str,
) -> None:
    with open_stack(durable_database_url, admin_token=TOKEN) as stack:
        session_id = stack.browser.signed_in(ALICE)["session_id"]
        for authorization in (f"Bearer {TOKEN}", basic("auditor", TOKEN), basic("", TOKEN)):
            headers = {"Authorization": authorization}
            verify = stack.browser.send("GET", "/admin/audit/verify", headers=headers)
            assert verify.status_code == 200, verify.text
            assert verify.json()["data"]["ok"] is True
            page = stack.browser.send(
                "GET", f"/admin/sessions/{session_id}/timeline", headers=headers
            )
            assert page.status_code == 200
            assert page.headers["content-type"].startswith("text/html")


# The events route ---------------------------------------------------------------------


class Recorder:
    """Sends requests and notes which request id each new session event must carry."""

    def __init__(self, stack: Stack, browser: Browser) -> None:
        self.stack, self.browser = stack, browser
        self.session_id = ""
        self.request_ids: dict[int, str] = {}  # version -> X-Request-Id of its answer
        self.times: dict[int, str] = {}

    def version(self) -> int:
        if not self.session_id:
            return 0
        return int(session_events(self.stack.browser, self.session_id)[-1]["version"])

    def __call__(self, send: Callable[[], httpx.Response]) -> httpx.Response:
        before = self.version()
        response = send()
        self.session_id = self.session_id or response.json()["session"]["id"]
        for version in range(before + 1, self.version() + 1):
            self.request_ids[version] = response.headers["x-request-id"]
            self.times[version] = rfc3339(self.stack.clock.now())
        self.stack.clock.advance(STEP)
        return response


def test_the_events_route_lists_events_in_order_with_their_request_context(
    durable_database_url: str,
) -> None:
    # Given a browser at 203.0.113.77 that signs in two accounts, switches, signs one out
    with (
        open_stack(durable_database_url, admin_token=TOKEN) as stack,
        browser_at(stack, "203.0.113.77") as browser,
    ):
        act = Recorder(stack, browser)
        traced = {"X-Request-Id": "audit-trace-0001"}
        first = act(lambda: browser.send("POST", "/auth/signin", headers=traced, data=form(ALICE)))
        alice = sign_in_of(first.json()["data"], ALICE)
        act(lambda: browser.switch_organization(ACME))
        insane = {"X-Request-Id": "not a sane id!"}
        act(lambda: browser.send("POST", "/session/switch-workspace", headers=insane,
                                 params={"workspace_id": ACME_WEB}))  # fmt: skip
        second = act(lambda: browser.sign_in(BOB))
        bob = sign_in_of(second.json()["data"], BOB)
        act(lambda: browser.switch_sign_in(alice["id"]))
        act(lambda: browser.sign_out(bob["id"]))

        # When an auditor lists the session's events
        events = session_events(stack.browser, act.session_id)

    # Then they come in order, each with what it was, when, and where from
    assert first.headers["x-request-id"] == "audit-trace-0001"
    assert act.request_ids[5] != "not a sane id!"
    assert [e["type"] for e in events] == [
        "Started", "SignInAttempted", "SignInCompleted", "MembershipActivated",
        "MembershipActivated", "SignInAttempted", "SignInCompleted", "ActiveSignInSwitched",
        "SignedOut",
    ]  # fmt: skip
    assert [e["version"] for e in events] == list(range(1, 10))
    positions = [e["position"] for e in events]
    assert all(isinstance(p, int) for p in positions)
    assert positions == sorted(set(positions))
    assert {e["session_id"] for e in events} == {act.session_id}
    assert {e["aggregate"] for e in events} == {"Session"}
    assert [e["time"] for e in events] == [act.times[e["version"]] for e in events]
    for event in events:
        assert event["context"] == {
            "client_address": "203.0.113.0",  # truncated by default
            "user_agent": "AuditTest/1.0",
            "request_id": act.request_ids[event["version"]],
        }
    completed = events[2]["data"]
    assert completed["user_id"] == ALICE[2]
    assert completed["sign_in_id"] == alice["id"]
    assert completed["method"] == "plain_email"
    assert events[3]["data"]["organization_membership_id"] == "600000000000000001"
    assert events[4]["data"]["workspace_membership_id"] == "700000000000000001"
    assert events[7]["data"] == {"from_sign_in_id": bob["id"], "sign_in_id": alice["id"]}
    assert events[8]["data"] == {"sign_in_id": bob["id"]}


def form(user: tuple[str, str, str], password: str | None = None) -> dict[str, str]:
    return {"email": user[0], "password": password or user[1], "strategy": "plain_email"}


def addresses_recorded(stack: Stack, address: str) -> list[str]:
    """Sign in from ``address`` in a new session; the client addresses its events carry."""
    with browser_at(stack, address) as browser:
        session_id = browser.signed_in(ALICE)["session_id"]
    return sorted(
        {e["context"]["client_address"] for e in session_events(stack.browser, session_id)}
    )


@pytest.mark.parametrize(
    ("mode", "address", "kept"),
    [
        ("truncated", "203.0.113.77", "203.0.113.0"),
        ("truncated", "2001:db8:abcd:12::7", "2001:db8:abcd::"),
        ("whole", "203.0.113.77", "203.0.113.77"),
        ("whole", "2001:db8:abcd:12::7", "2001:db8:abcd:12::7"),
    ],
)
def test_client_addresses_are_kept_as_configured(
    durable_database_url: str, mode: str, address: str, kept: str
) -> None:
    with open_stack(durable_database_url, admin_token=TOKEN, audit_client_address=mode) as stack:
        assert addresses_recorded(stack, address) == [kept]


def test_hashed_client_addresses_compare_but_do_not_reveal(durable_database_url: str) -> None:
    with open_stack(
        durable_database_url, admin_token=TOKEN, audit_client_address="hashed"
    ) as stack:
        (one,) = addresses_recorded(stack, "203.0.113.77")
        (again,) = addresses_recorded(stack, "203.0.113.77")
        (other,) = addresses_recorded(stack, "203.0.113.78")
    assert re.fullmatch(r"hmac:[0-9a-f]{32}", one), one
    assert one == again
    assert other != one
    assert "203.0.113" not in one


# Secrets ------------------------------------------------------------------------------


def leaves(value: Any) -> Iterator[str]:
    """Every scalar in a JSON value, as text."""
    if isinstance(value, dict):
        for item in value.values():
            yield from leaves(item)
    elif isinstance(value, list):
        for item in value:
            yield from leaves(item)
    elif value is not None:
        yield str(value)


def code_sent(caplog: pytest.LogCaptureFixture, to: str, seen: int) -> str:
    """The newest code the development outbox logged for ``to`` (sent from a thread)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        mails = [r.getMessage() for r in caplog.records if to in r.getMessage()]
        if len(mails) > seen:
            found = re.findall(r"code is ([0-9]{6})\.", mails[-1])
            assert len(found) == 1, mails[-1]
            return str(found[0])
        time.sleep(0.02)
    raise AssertionError(f"no code was sent to {to}")


def test_no_password_code_or_cookie_token_is_in_any_event(
    durable_database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="session_ledger.mail")
    wrong_password = "a-wrong-password-0000"
    with open_stack(durable_database_url, admin_token=TOKEN) as stack:
        browser = stack.browser
        tokens: set[str] = set()

        def sent(response: httpx.Response) -> httpx.Response:
            assert response.status_code in (200, 400), response.text
            if browser.token:
                tokens.add(browser.token)
            return response

        # passwords: a wrong one, then the right one
        assert sent(browser.sign_in(ALICE, password=wrong_password)).status_code == 400
        sent(browser.sign_in(ALICE))
        # an emailed code: a wrong one, then the right one
        started = sent(
            browser.send("POST", "/auth/signin", data={"email": CAROL[0], "strategy": "email_otp"})
        ).json()["data"]
        attempt = next(a for a in started["signin_attempts"] if not a["completed"])["id"]
        prepare = {"attempt_identifier": attempt, "strategy": "email_otp"}
        sent(browser.send("POST", "/auth/prepare-verification", params=prepare))
        code = code_sent(caplog, CAROL[0], 0)
        wrong_code = f"{(int(code) + 1) % 1_000_000:06d}"
        verify = {"attempt_identifier": attempt}
        for attempt_code, status in ((wrong_code, 400), (code, 200)):
            answer = sent(
                browser.send(
                    "POST", "/auth/attempt-verification", params=verify,
                    data={"verification_code": attempt_code},
                )
            )  # fmt: skip
            assert answer.status_code == status, answer.text
        sent(browser.sign_out())
        assert len(tokens) >= 3

        session_id = answer.json()["data"]["id"]
        events = session_events(browser, session_id)
        exported = io.StringIO()
        stack.services.audit.export(exported)

    secrets = [ALICE[1], wrong_password, *tokens]
    assert {"SignInAttemptFailed", "VerificationPrepared", "SignInCompleted"} <= {
        e["type"] for e in events
    }
    lines = [json.loads(line) for line in exported.getvalue().splitlines()]
    assert len(lines) > len(events)  # tokens' events too
    for line in lines:
        payload = base64.b64decode(line["payload"])
        text = json.dumps(line)
        for secret in secrets:
            assert secret not in text
            assert secret.encode() not in payload
        values = list(leaves(line["data"])) + list(leaves(json.loads(payload)))
        assert code not in values
        assert wrong_code not in values


# A user's sign-ins --------------------------------------------------------------------


def test_a_users_sign_ins_across_sessions_with_how_each_ended(durable_database_url: str) -> None:
    with open_stack(durable_database_url, admin_token=TOKEN) as stack:
        one, two = stack.browser, stack.open_browser()
        # Session one: Alice signs in and out; later signs in again, and that one expires.
        first = one.signed_in(ALICE)
        stack.clock.advance(STEP)
        assert one.sign_out(first["id"]).status_code == 200
        stack.clock.advance(STEP)
        third = one.signed_in(ALICE)
        # Session two: Alice and Bob, then a sign-out of all.
        stack.clock.advance(STEP)
        second = two.signed_in(ALICE)
        bob = two.signed_in(BOB)
        stack.clock.advance(STEP)
        assert two.sign_out().status_code == 200
        ended_all = stack.clock.now()
        stack.clock.advance(timedelta(days=31))
        noticed = stack.clock.now()
        one.session()  # the service notices the expiry

        alice_rows = admin_data(stack.browser, f"/admin/users/{ALICE[2]}/sign-ins")["sign_ins"]
        bob_rows = admin_data(stack.browser, f"/admin/users/{BOB[2]}/sign-ins")["sign_ins"]
        carol_rows = admin_data(stack.browser, f"/admin/users/{CAROL[2]}/sign-ins")["sign_ins"]

    def row(sign_in: Json, ended: str, reason: str) -> Json:
        return {
            "sign_in_id": sign_in["id"],
            "session_id": sign_in["session_id"],
            "user_id": sign_in["user_id"],
            "method": "plain_email",
            "started_at": sign_in["created_at"],
            "expires_at": sign_in["expires_at"],
            "ended_at": ended,
            "end_reason": reason,
        }

    assert first["session_id"] != second["session_id"]
    assert alice_rows == [
        row(first, rfc3339(START + STEP), "signed_out"),
        row(third, rfc3339(noticed), "expired"),
        row(second, rfc3339(ended_all), "signed_out_all"),
    ]
    assert bob_rows == [row(bob, rfc3339(ended_all), "signed_out_all")]
    assert carol_rows == []


# Bad requests -------------------------------------------------------------------------


def test_malformed_ids_are_400(durable_database_url: str) -> None:
    with open_stack(durable_database_url, admin_token=TOKEN) as stack:
        for raw in MALFORMED_IDS:
            for path in (
                f"/admin/sessions/{raw}/events",
                f"/admin/sessions/{raw}/state?version=1",
                f"/admin/sessions/{raw}/timeline",
                f"/admin/users/{raw}/sign-ins",
            ):
                assert_error(stack.browser.send("GET", path, headers=ADMIN), 400, "INVALID_REQUEST")


def test_an_unknown_session_is_404_unknown_session(durable_database_url: str) -> None:
    with open_stack(durable_database_url, admin_token=TOKEN) as stack:
        known = stack.browser.signed_in(ALICE)["session_id"]
        unknown = "123456789"
        for path, params in (
            (f"/admin/sessions/{unknown}/events", {}),
            (f"/admin/sessions/{unknown}/state", {"version": 1}),
            (f"/admin/sessions/{unknown}/state", {"at": "2030-01-02T00:00:00Z"}),
            (f"/admin/sessions/{unknown}/timeline", {}),
            (f"/admin/sessions/{known}/state", {"at": "2029-12-31T00:00:00Z"}),  # not yet
        ):
            assert_error(admin_get(stack.browser, path, **params), 404, "UNKNOWN_SESSION")


def test_state_needs_exactly_one_of_version_and_at(durable_database_url: str) -> None:
    with open_stack(durable_database_url, admin_token=TOKEN) as stack:
        session_id = stack.browser.signed_in(ALICE)["session_id"]
        path = f"/admin/sessions/{session_id}/state"
        for params in (
            {},
            {"version": 1, "at": "2030-01-02T00:00:00Z"},
            {"at": "2030-01-02T00:00:00"},  # no zone
            {"at": "yesterday"},
            {"version": 0},
            {"version": "one"},
        ):
            assert_error(admin_get(stack.browser, path, **params), 400, "INVALID_REQUEST")
        assert admin_data(stack.browser, path, version=1)["version"] == 1
        assert admin_data(stack.browser, path, at=rfc3339(START))["version"] == 3
        assert_error(admin_get(stack.browser, "/admin/audit/verify", head="xyz"), 400,
                     "INVALID_REQUEST")  # fmt: skip
