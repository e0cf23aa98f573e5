"""The timeline page in a real browser: Debian's headless Chromium, driven by Playwright.

Given the service on a real port (uvicorn, admin token set) and a history made over HTTP,
when an auditor opens /admin/sessions/{id}/timeline with the token as the Basic password,
then the page lists the events in order with the account, organization and workspace active
after each, and typing in the filter box hides the other events. A screenshot is left in
test-artifacts/timeline.png. Without Chromium the test skips loudly, or fails under CI=true.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest

from api.app import create_app
from infrastructure.clock import SettableClock
from tests.audit.support import REPO, TOKEN
from tests.e2e.harness import START
from tests.helpers import ACME, ACME_WEB, ALICE, BOB, services_for
from tests.serving import CHROMIUM, CHROMIUM_ARGS, require_chromium, serving

pytestmark = pytest.mark.slow  # Chromium

SCREENSHOT = REPO / "test-artifacts" / "timeline.png"
AGENT = "timeline-test/1.0"
HOSTILE_AGENT = '<img src=x onerror="window.pwned = 1">'  # any client can send one
NONE = "none"


def make_history(base: str, clock: SettableClock) -> tuple[str, str, list[tuple[Any, ...]]]:
    """Alice and Bob in one session, over real HTTP; the session id, the first request id,
    and per event: type, then account, organization, workspace and who is signed in after it.
    """
    with httpx.Client(base_url=base, headers={"User-Agent": AGENT}) as http:

        def post(path: str, **kwargs: Any) -> Any:
            response = http.post(path, **kwargs)
            assert response.status_code == 200, response.text
            clock.advance(timedelta(minutes=1))
            return response

        def sign_in(user: tuple[str, str, str], agent: str = AGENT) -> Any:
            form = {"email": user[0], "password": user[1], "strategy": "plain_email"}
            return post("/auth/signin", data=form, headers={"User-Agent": agent})

        first = sign_in(ALICE)
        alice = first.json()["data"]["active_signin_id"]
        post("/session/switch-organization", params={"organization_id": ACME})
        post("/session/switch-workspace", params={"workspace_id": ACME_WEB})
        bob = sign_in(BOB, HOSTILE_AGENT).json()["data"]["active_signin_id"]
        post("/session/switch-sign-in", params={"sign_in_id": alice})
        post("/session/sign-out", params={"sign_in_id": bob})
    a, b = ALICE[2], BOB[2]
    both = f"{a}, {b}"
    expected = [
        ("Started", NONE, NONE, NONE, "nobody"),
        ("SignInAttempted", NONE, NONE, NONE, "nobody"),
        ("SignInCompleted", a, NONE, NONE, a),
        ("MembershipActivated", a, ACME, NONE, a),
        ("MembershipActivated", a, ACME, ACME_WEB, a),
        ("SignInAttempted", a, ACME, ACME_WEB, a),
        ("SignInCompleted", b, NONE, NONE, both),
        ("ActiveSignInSwitched", a, ACME, ACME_WEB, both),
        ("SignedOut", a, ACME, ACME_WEB, a),
    ]
    return first.json()["data"]["id"], first.headers["x-request-id"], expected


def test_the_timeline_page_in_a_real_browser(durable_database_url: str) -> None:
    require_chromium()
    from playwright.sync_api import sync_playwright

    clock = SettableClock(START)
    settings: dict[str, Any] = {"admin_token": TOKEN, "cookie_secure": False}
    with (
        services_for(durable_database_url, clock=clock, **settings) as services,
        serving(create_app(services=services)) as base,
        sync_playwright() as playwright,
    ):
        # Given a history made over HTTP
        session_id, request_id, expected = make_history(base, clock)
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            # Without the token the page is refused
            stranger = browser.new_context()
            refused = stranger.request.get(f"{base}/admin/sessions/{session_id}/timeline")
            assert refused.status == 401
            assert refused.headers["www-authenticate"].startswith("Basic ")

            # When an auditor opens the timeline with the token as the Basic password
            auditor = browser.new_context(
                http_credentials={"username": "auditor", "password": TOKEN},
                viewport={"width": 1100, "height": 900},
            )
            page = auditor.new_page()
            opened = page.goto(f"{base}/admin/sessions/{session_id}/timeline")
            assert opened is not None
            assert opened.status == 200

            # Then every event is there, in order, with what was active after it
            assert page.title() == f"Session {session_id}: timeline"
            items = page.locator("ol.timeline li")
            assert items.count() == len(expected)
            for index, (kind, *active) in enumerate(expected):
                item = items.nth(index)
                assert item.get_attribute("data-type") == kind
                assert item.get_attribute("data-version") == str(index + 1)
                cells = item.locator("table.active td").all_inner_texts()
                assert [cells[0], cells[2], cells[3], cells[4]] == active, (index, kind)
            context = items.nth(0).locator(".context").inner_text()
            assert "from 127.0.0.0" in context  # truncated by default
            assert f"agent {AGENT}" in context
            assert f"request {request_id}" in context
            assert page.locator("#shown").inner_text() == str(len(expected))
            # a hostile user agent is shown as text, never run
            assert f"agent {HOSTILE_AGENT}" in items.nth(6).locator(".context").inner_text()
            assert page.evaluate("window.pwned === undefined")
            assert page.locator("ol.timeline img").count() == 0

            # And the filter box hides what does not match, in the page's JavaScript
            def shown() -> list[str]:
                return [
                    str(items.nth(i).get_attribute("data-type"))
                    for i in range(items.count())
                    if items.nth(i).is_visible()
                ]

            page.fill("#filter", "switched")
            assert shown() == ["ActiveSignInSwitched"]
            assert page.locator("#shown").inner_text() == "1"
            page.fill("#filter", "SignIn")
            assert shown() == [
                "SignInAttempted", "SignInCompleted", "SignInAttempted", "SignInCompleted",
                "ActiveSignInSwitched",
            ]  # fmt: skip
            page.fill("#filter", "Membership")
            assert shown() == ["MembershipActivated", "MembershipActivated"]
            page.fill("#filter", "")
            assert len(shown()) == len(expected)
            assert page.locator("#shown").inner_text() == str(len(expected))

            SCREENSHOT.parent.mkdir(exist_ok=True)
            page.screenshot(path=str(SCREENSHOT), full_page=True)
        finally:
            browser.close()
    assert SCREENSHOT.read_bytes().startswith(b"\x89PNG")
