"""The FastAPI application; the lifespan is the composition root."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api import routes_auth, routes_session
from api.envelope import install_error_handlers
from infrastructure.container import Services, build_services
from infrastructure.settings import Settings

DESCRIPTION = """Session part of a multi-account auth frontend API, wire-compatible with Wacht.

Every JSON response is the envelope `{status, message, data, session, errors}`. The browser
session travels in the `session_id` cookie (an opaque token, not the session id)."""


def create_app(settings: Settings | None = None, services: Services | None = None) -> FastAPI:
    """Build the app; services are built at startup from settings unless given (tests)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = services is None
        app.state.services = services or build_services(settings or Settings())
        try:
            yield
        finally:
            if owned:
                app.state.services.close()

    app = FastAPI(
        title="session-ledger",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.include_router(routes_session.router)
    app.include_router(routes_auth.router)
    return app
