"""An app built the way Wacht's SDK works, in headless Chromium, on another origin than us
or on ours.

Given the service at ``http://frontend.example.test:<port>`` and an app page served from
``http://app.example.test:<port>`` (Chromium maps both names to 127.0.0.1: same site, two
origins, like ``app.example.com`` and ``frontend.example.com``), or by the service itself
(same origin), when the page derives our
origin from the publishable key, loads /deployment and signs two accounts in with multipart
forms, switches accounts, organizations and workspaces, reads the membership lists, lists
and ends a sign-in on another device, and signs out, then every step works: in production
mode with the cookie (credentialed CORS), and in staging mode with ``__dev_session__`` and
``X-Development-Session`` and no cookie at all.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from api.app import create_app
from infrastructure.clock import SystemClock
from tests.helpers import ACME, ACME_WEB, ALICE, BOB, services_for
from tests.serving import CHROMIUM, CHROMIUM_ARGS, free_port, require_chromium, serving

pytestmark = [
    pytest.mark.slow,  # Chromium and a served instance
    pytest.mark.xdist_group("chromium-sdk"),  # one worker runs the module's fixture, once
]

PAGE = (Path(__file__).resolve().parent / "sdk_page.html").read_text()
APP_HOST, API_HOST = "app.example.test", "frontend.example.test"
STRANGER_HOST = "elsewhere.example.test"  # not an allowed origin


async def _page(request: Request) -> HTMLResponse:
    return HTMLResponse(PAGE)


def page_server() -> Starlette:
    """The app's origin: one page and nothing else."""
    return Starlette(routes=[Route("/", _page)])


def _api(api: FastAPI, same_origin: bool) -> FastAPI:
    """The service; on the same origin it also serves the app's page (at ``/``)."""
    if same_origin:
        api.add_route("/", _page)
    return api


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """One headless Chromium for the module, mapping the test host names to 127.0.0.1; each
    test opens (and closes) browser contexts of its own, so no cookie crosses tests."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    hosts = (APP_HOST, API_HOST, STRANGER_HOST)
    rules = "--host-resolver-rules=" + ", ".join(f"MAP {host} 127.0.0.1" for host in hosts)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, rules])
        try:
            yield browser
        finally:
            browser.close()


@pytest.mark.parametrize("origin", ["cross-origin", "same-origin"])
@pytest.mark.parametrize("mode", ["production", "staging"])
def test_an_sdk_app_works_end_to_end(
    chromium: Any, durable_database_url: str, mode: str, origin: str
) -> None:
    api_port, app_port = free_port(), free_port()
    public = f"http://{API_HOST}:{api_port}"
    same = origin == "same-origin"
    app = public if same else f"http://{APP_HOST}:{app_port}"
    settings: dict[str, Any] = {
        "public_url": public, "frontend_url": app, "deployment_mode": mode,
        "cookie_secure": False,  # plain http in the test
    }  # fmt: skip
    contexts: list[Any] = []

    def new_page() -> Any:
        contexts.append(chromium.new_context())
        return contexts[-1].new_page()

    with (
        services_for(durable_database_url, clock=SystemClock(), **settings) as services,
        serving(_api(create_app(services=services), same), api_port),
        serving(page_server(), app_port),
    ):
        try:
            from api.deployment_doc import deployment_document

            key = deployment_document(services.settings, [], []).publishable_key
            laptop = new_page()
            phone = new_page()
            for page in (laptop, phone):
                page.goto(f"{app}/?key={key}")
                loaded = page.evaluate("sdk.loadDeployment()")
                assert loaded == {"mode": mode, "frontend_host": app, "base": public}

            # The same page on an origin that is not allowed cannot read our answers
            stranger = new_page()
            stranger.goto(f"http://{STRANGER_HOST}:{app_port}/?key={key}")
            failed = "sdk.loadDeployment().then(() => 'loaded', (error) => error.name)"
            assert stranger.evaluate(failed) == "TypeError"  # a CORS failure, as fetch reports it

            def call(page: Any, expression: str) -> Any:
                return page.evaluate(f"(async () => {{ {expression} }})()")

            # Two accounts on the laptop, one switch between them
            assert call(laptop, "return (await sdk.session()).signins") == []
            alice = call(laptop, f"return (await sdk.signIn('{ALICE[0]}', '{ALICE[1]}'))"
                                 ".active_signin_id")  # fmt: skip
            after_bob = call(laptop, f"return await sdk.signIn('{BOB[0]}', '{BOB[1]}')")
            assert len(after_bob["signins"]) == 2
            assert after_bob["active_signin"]["user"]["primary_email_address"]["email"] == BOB[0]
            switched = call(laptop, f"return await sdk.switchSignIn('{alice}')")
            assert switched["active_signin_id"] == alice

            # Organizations and workspaces, found the way the SDK's hooks find them
            call(laptop, f"return await sdk.switchOrganization('{ACME}')")
            active = call(laptop, "return await sdk.active()")
            assert active == {
                "user": ALICE[0], "organization": "Acme", "workspace": None,
                "organizations": ["Acme", "Globex"], "workspaces": ["Acme Web", "Acme Data"],
            }  # fmt: skip
            call(laptop, f"return await sdk.switchWorkspace('{ACME_WEB}')")
            active = call(laptop, "return await sdk.active()")
            assert (active["organization"], active["workspace"]) == ("Acme", "Acme Web")
            assert call(laptop, "return (await sdk.token()).token").count(".") == 2

            # Alice on the phone too; the phone lists both devices and ends the laptop's
            on_phone = call(phone, f"return (await sdk.signIn('{ALICE[0]}', '{ALICE[1]}'))"
                                   ".active_signin_id")  # fmt: skip
            devices = call(phone, "return await sdk.signins()")
            assert [(d["id"], d["current"]) for d in devices] == [(alice, False), (on_phone, True)]
            assert all("Chrome" in d["user_agent"] for d in devices)
            assert call(phone, f"return await sdk.removeSignin('{alice}')") is None
            laptop_now = call(laptop, "return await sdk.session()")
            assert [s["user_id"] for s in laptop_now["signins"]] == [BOB[2]]
            assert laptop_now["active_signin"] is None

            # Sign out everything on the laptop
            assert call(laptop, "return (await sdk.signOut()).signins") == []
            assert call(phone, "return (await sdk.session()).active_signin_id") == on_phone

            # How the session travelled
            for page in (laptop, phone):
                held = page.context.cookies(public)
                dev_session = page.evaluate("sdk.devSession()")
                if mode == "production":
                    assert [c["name"] for c in held] == ["session_id"]
                    assert dev_session is None
                else:
                    if not same:
                        assert held == []  # cross-origin staging requests carry no credentials
                    assert dev_session
        finally:
            for context in contexts:
                context.close()
