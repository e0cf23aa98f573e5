"""The FastAPI application; the lifespan is the composition root."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Request
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import routes_admin, routes_auth, routes_me, routes_ops, routes_session, routes_webhooks
from api.context import refuse_cross_site, request_scope
from api.cors import CredentialedCors
from api.errors import install_error_handlers, render_error
from api.heap import settle_heap
from api.hot_routes import MATCHED, HotRoutes, hot_route
from api.openapi_contract import document_contract
from api.rendered import RenderedBodies
from infrastructure.container import Services, build_services
from infrastructure.deployment import allowed_origins
from infrastructure.settings import Settings

DESCRIPTION = """Session part of a multi-account auth frontend API, wire-compatible with Wacht.

Every JSON response is the envelope `{status, message, data, session, errors}`. The browser
session travels in the `session_id` cookie (an opaque token, not the session id; the name is a
setting), or, in staging mode, in the `__dev_session__` query parameter."""


class RequestContextMiddleware:
    """Commands record where they came from; every answer names its request, so a user's
    report can be matched to the audit trail. (Plain ASGI: Starlette's BaseHTTPMiddleware
    costs a task group and a response stream per request.)"""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        started = False
        with request_scope(request) as identifier:

            async def send_with_id(message: Message) -> None:
                nonlocal started
                if message["type"] == "http.response.start":
                    started = True
                    MutableHeaders(scope=message)["X-Request-Id"] = identifier
                await send(message)

            try:
                await self.app(scope, receive, send_with_id)
            except Exception as error:
                # Answered here rather than by Starlette's outermost handler, so a 500 (and
                # a store outage's 503) carries the request id like every other answer.
                if started:
                    raise
                await render_error(request, error)(scope, receive, send_with_id)


class LedgerApp(FastAPI):
    """FastAPI, with the hot routes (:mod:`api.hot_routes`) served ahead of its whole stack.

    A request :func:`~api.hot_routes.hot_route` matches goes straight to
    :class:`~api.hot_routes.HotRoutes`, which does what our CORS and request-context layers
    do on the response it builds, skipping Starlette's error, telemetry and body-limit
    middlewares and the router (they cost more than the work of these routes); every other
    request takes FastAPI's stack, with those two layers of ours inside it. Both give the
    same answers (tests/e2e/test_hot_routes.py).
    """

    hot_stack: HotRoutes | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.hot_stack is not None and scope["type"] == "http":
            scope["app"] = self  # as Starlette sets it, for our layers to find the services
            matched = hot_route(scope)
            if matched is not None:
                scope[MATCHED] = matched
                await self.hot_stack(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def create_served_app() -> FastAPI:
    """The app of one worker process of ``serve --workers N`` (uvicorn's factory)."""
    return create_app(settle=True)


def create_app(
    settings: Settings | None = None,
    services: Services | None = None,
    *,
    run_worker: bool | None = None,
    settle: bool = False,
) -> FastAPI:
    """Build the app; services are built at startup from settings unless given (tests).

    The projection worker runs inside the app when ``run_worker`` says so; by default, when
    the app builds its own services and ``SESSION_LEDGER_RUN_PROJECTIONS`` is true. With
    ``settle`` (a serving process: not tests, which build many apps in one process) the
    heap is settled once startup is over (:mod:`api.heap`).
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = services is None
        built = services or build_services(settings or Settings())
        app.state.services = built
        worker = built.settings.run_projections if run_worker is None and owned else run_worker
        if worker:
            built.worker.start()
        follower = built.follower if owned else None  # a serving process (tests start theirs)
        if follower is not None:
            follower.start()
        # In "process" mode `serve` runs the delivery worker as a child process instead; in
        # "thread" mode a serving process runs it (not apps handed services by tests), whether
        # or not the projection worker runs here (under `serve` it has a process of its own).
        webhooks = (
            (owned or run_worker is not None)
            and built.settings.run_webhooks
            and built.settings.webhook_worker == "thread"
            and built.webhooks.configured
        )
        if webhooks:
            built.webhooks.start()
        if built.async_reads is not None:
            await built.async_reads.open()  # on this loop, which its reads will run on
        if settle:
            settle_heap()
        try:
            yield
        finally:
            if built.async_reads is not None:
                await built.async_reads.close()
            if webhooks:
                built.webhooks.stop()
            if worker:
                built.worker.stop()
            if follower is not None:
                follower.stop()
            if owned:
                built.close()

    app = LedgerApp(
        title="session-ledger",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        dependencies=[Depends(refuse_cross_site)],  # CSRF: every state-changing route
    )
    install_error_handlers(app)
    document_contract(app)

    app.add_middleware(RequestContextMiddleware)
    configured = settings or (services.settings if services else Settings())
    # Outermost, so every answer (errors too) carries CORS headers for allowed origins.
    origins = allowed_origins(configured)
    app.add_middleware(CredentialedCors, origins=origins)
    app.hot_stack = HotRoutes(origins)
    app.state.rendered_sessions = RenderedBodies()  # GET /session's bodies (api.rendered)

    app.include_router(routes_session.router)
    app.include_router(routes_auth.router)
    app.include_router(routes_ops.router)
    app.include_router(routes_me.router)
    admin_token = configured.admin_token
    if admin_token is not None:
        # Without a token the admin routes do not exist at all (404, not 401).
        app.include_router(routes_admin.router)
        app.include_router(routes_webhooks.router)
    return app
