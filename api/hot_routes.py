"""The three routes browsers call most, dispatched ahead of FastAPI's own stack.

Wacht's SDK polls ``GET /session`` and ``GET /session/token`` from every tab, and the switch
is the product. For them, Starlette's and FastAPI's middlewares, router, dependency solving
and parameter validation cost more of a request's CPU than our own work (profiled under
wrk). :class:`api.app.LedgerApp` hands :class:`HotRoutes` the requests in the common shape
(:func:`hot_route`: no query, or exactly one non-empty value of the route's one parameter,
as FastAPI would parse it) before any middleware runs. Anything else (a repeated or unknown
parameter, ``__dev_session__``, HEAD) goes down FastAPI's stack to the same route, so every
answer, error and schema is the route's own.

What it keeps: the cross-site check every state-changing route has (``refuse_cross_site``);
what our middlewares do for every other request, done on the response it builds (the
request id and audit source of :func:`api.context.request_scope`, errors rendered by the
``render_error`` FastAPI's exception handlers use, the CORS headers of
:func:`api.cors.add_cors_headers`). Each is first tried on the event loop (``at_once``):
the two reads as one statement over an async connection (PostgreSQL only), the switch
decided and appended without a thread (a remembered cookie and session, on either store).
Whatever they leave takes one thread-pool hop, in a copy of the request's context (its id
and its audit source).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from api.context import check_origin, request_scope
from api.cors import add_cors_headers
from api.errors import render_error
from api.routes_session import (
    get_session_at_once,
    get_session_now,
    session_token_at_once,
    session_token_now,
    switch_sign_in_at_once,
    switch_sign_in_now,
)

# As many threads as Starlette's thread pool lets sync routes use (anyio's default limit).
THREADS = 40
MATCHED = "session_ledger.hot_route"  # the scope key of what hot_route matched


@dataclass(frozen=True)
class HotRoute:
    """A route served here: its blocking handler and the one query parameter it takes."""

    handler: Callable[..., Response]
    parameter: str | None
    # Tried first, on the event loop: the answer, or None to run ``handler`` in a thread.
    at_once: Callable[..., Awaitable[Response | None]] | None = None

    def arguments(self, query_string: bytes) -> tuple[str, ...] | None:
        """The handler's query arguments, or None when FastAPI should parse this query."""
        if not query_string:
            return ()  # the handler's default
        if self.parameter is None:
            return None
        items = QueryParams(query_string).multi_items()
        if len(items) != 1 or items[0][0] != self.parameter or not items[0][1]:
            return None
        return (items[0][1],)


ROUTES: dict[tuple[str, str], HotRoute] = {
    ("GET", "/session"): HotRoute(get_session_now, None, get_session_at_once),
    ("GET", "/session/token"): HotRoute(session_token_now, "template", session_token_at_once),
    ("POST", "/session/switch-sign-in"): HotRoute(
        switch_sign_in_now, "sign_in_id", switch_sign_in_at_once
    ),
}


def hot_route(scope: Scope) -> tuple[HotRoute, tuple[str, ...]] | None:
    """The hot route ``scope`` asks for, with its arguments, when it is in the common shape
    and the app's services are up; None sends the request down FastAPI's stack."""
    route = ROUTES.get((scope["method"], scope["path"]))
    if route is None:
        return None
    arguments = route.arguments(scope["query_string"])
    if arguments is None or not hasattr(scope["app"].state, "services"):
        return None
    return route, arguments


class HotRoutes:
    """The ASGI app serving a request :func:`hot_route` matched (see
    :class:`api.app.LedgerApp`). It does on the response it builds what our request-context
    and CORS layers do for other requests (its id, its audit source, its errors rendered as
    envelopes, the CORS headers), without wrapping ``send`` twice."""

    def __init__(self, origins: frozenset[str]) -> None:
        self.origins = origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route, arguments = scope[MATCHED]
        request = Request(scope, receive)
        with request_scope(request) as identifier:
            try:
                response = await self._answer(request, route, arguments)
            except Exception as error:
                response = render_error(request, error)
            response.headers["X-Request-Id"] = identifier
            add_cors_headers(response.headers, request.headers.get("origin"), self.origins)
            await response(scope, receive, send)

    async def _answer(
        self, request: Request, route: HotRoute, arguments: tuple[str, ...]
    ) -> Response:
        services = request.app.state.services
        check_origin(request)
        response = await route.at_once(request, services, *arguments) if route.at_once else None
        if response is None:
            response = await self._in_thread(route.handler, request, services, *arguments)
        return response

    async def _in_thread(self, function: Callable[..., Response], *arguments: Any) -> Response:
        """``function(*arguments)`` on a pool thread, seeing this request's context."""
        context = contextvars.copy_context()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(_threads(), context.run, function, *arguments)


@functools.cache
def _threads() -> ThreadPoolExecutor:
    """The process's one pool for these routes (shared by every app a test builds); cheaper
    per call than anyio's ``to_thread``, which looks up its task and limiter each time."""
    return ThreadPoolExecutor(THREADS, thread_name_prefix="hot-route")
