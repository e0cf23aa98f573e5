"""The HTTP test harness: real services on a real store, an app, and browsers that call it.

A :class:`Browser` is one ``TestClient`` with its own cookie jar, so two browsers are two
independent sessions over the same services. The base URL is https, so ``Secure`` cookies
come back the way a real browser would send them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.app import create_app
from application.authenticator_base import random_code
from infrastructure.clock import SettableClock
from infrastructure.container import Services
from tests.helpers import services_for

COOKIE = "session_id"
START = datetime(2030, 1, 1, 9, 0, tzinfo=UTC)

Json = dict[str, Any]
User = tuple[str, str, str]


class Browser:
    """One browser: it keeps whatever ``session_id`` cookie the service sets."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.responses: list[httpx.Response] = []

    @property
    def token(self) -> str | None:
        """The cookie value the browser holds now."""
        value: str | None = self.client.cookies.get(COOKIE)
        return value

    def use_cookie(self, value: str | None) -> None:
        """Forget the jar and, unless ``value`` is None, hold that cookie instead."""
        self.client.cookies.clear()
        if value is not None:
            self.client.cookies.set(COOKIE, value)

    def send(
        self, method: str, path: str, *, cookie_header: str | bytes | None = None, **kwargs: Any
    ) -> httpx.Response:
        """Any request; with ``cookie_header`` the jar is emptied and that raw header is sent."""
        if cookie_header is not None:
            self.client.cookies.clear()
            kwargs["headers"] = {**kwargs.get("headers", {}), "cookie": cookie_header}
        response: httpx.Response = self.client.request(method, path, **kwargs)
        self.responses.append(response)
        return response

    def get_session(self) -> httpx.Response:
        """GET /session."""
        return self.send("GET", "/session")

    def session(self) -> Json:
        """The ``data`` of a successful GET /session."""
        response = self.get_session()
        assert response.status_code == 200, response.text
        data: Json = response.json()["data"]
        return data

    def sign_in(self, user: User, password: str | None = None) -> httpx.Response:
        """POST /auth/signin with ``plain_email``, the user's password unless one is given."""
        email, right_password, _ = user
        form = {"email": email, "password": password or right_password, "strategy": "plain_email"}
        return self.send("POST", "/auth/signin", data=form)

    def signed_in(self, user: User) -> Json:
        """Sign ``user`` in, insisting it works; the user's new sign-in."""
        response = self.sign_in(user)
        assert response.status_code == 200, response.text
        data: Json = response.json()["data"]
        return sign_in_of(data, user)

    def post(self, path: str, **params: str) -> httpx.Response:
        """POST ``path`` with query parameters."""
        return self.send("POST", path, params=params)

    def switch_sign_in(self, sign_in_id: str) -> httpx.Response:
        """POST /session/switch-sign-in."""
        return self.post("/session/switch-sign-in", sign_in_id=sign_in_id)

    def sign_out(self, sign_in_id: str | None = None) -> httpx.Response:
        """POST /session/sign-out, of one sign-in or (None) all of them."""
        if sign_in_id is None:
            return self.post("/session/sign-out")
        return self.post("/session/sign-out", sign_in_id=sign_in_id)

    def switch_organization(self, organization_id: str) -> httpx.Response:
        """POST /session/switch-organization."""
        return self.post("/session/switch-organization", organization_id=organization_id)

    def switch_workspace(self, workspace_id: str) -> httpx.Response:
        """POST /session/switch-workspace."""
        return self.post("/session/switch-workspace", workspace_id=workspace_id)


def sign_in_of(session: Json, user: User) -> Json:
    """The live sign-in of ``user`` in a Session document."""
    found: list[Json] = [s for s in session["signins"] if s["user_id"] == user[2]]
    assert len(found) == 1, f"expected one sign-in of {user[0]}, got {session['signins']}"
    return found[0]


@dataclass
class Stack:
    """Services on one store, the app over them, and a first browser."""

    services: Services
    clock: SettableClock
    app: FastAPI
    browser: Browser
    _exits: ExitStack = field(repr=False)

    def open_browser(self) -> Browser:
        """Another browser (another cookie jar) over the same app."""
        return Browser(self._exits.enter_context(_client(self.app)))

    def events_recorded(self) -> int:
        """How many events every aggregate of the store holds, all told."""
        count: int = self.services.sessions.recorder.max_notification_id() or 0
        return count


def _client(app: FastAPI) -> TestClient:
    return TestClient(app, base_url="https://testserver")


@contextmanager
def open_stack(
    database_url: str,
    clock: SettableClock | None = None,
    load_demo: bool = True,
    new_code: Callable[[], str] = random_code,
    **settings: object,
) -> Iterator[Stack]:
    """Services on ``database_url`` (demo directory loaded), an app, a browser; closed after."""
    clock = clock or SettableClock(START)
    with ExitStack() as exits:
        services = exits.enter_context(
            services_for(database_url, clock, load_demo, new_code, None, **settings)
        )
        app = create_app(services=services)
        browser = Browser(exits.enter_context(_client(app)))
        yield Stack(services, clock, app, browser, exits)
