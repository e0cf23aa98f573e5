"""Request dependencies: the services, and the caller's session from the ``session_id`` cookie."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request, Response
from fastapi.security import APIKeyCookie

from api.context import check_origin
from application.sessions import SessionsApp
from domain.errors import Unauthorized
from infrastructure.container import Services
from infrastructure.settings import Settings

COOKIE_NAME = "session_id"

cookie_scheme = APIKeyCookie(
    name=COOKIE_NAME,
    scheme_name="cookieAuth",  # the name Wacht's specification uses
    auto_error=False,
    description="Opaque session token (not the session's id), set by the service.",
)


async def get_services(request: Request) -> Services:
    """The services built by the app's lifespan (async: no I/O, so no thread hop)."""
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


@dataclass(frozen=True)
class Caller:
    """The caller's session and the token that opened it."""

    session_id: int
    token: str


def _bind(request: Request, sessions: SessionsApp, session_id: int) -> None:
    request.state.session_info = lambda: sessions.session_info(session_id)


def require_caller(
    request: Request,
    services: ServicesDep,
    token: Annotated[str | None, Depends(cookie_scheme)],
) -> Caller:
    """The caller's session; 401 UNAUTHORIZED, one body for every cookie problem."""
    check_origin(request)
    session_id = services.sessions.resolve_token(token)
    _bind(request, services.sessions, session_id)
    return Caller(session_id, token or "")


def optional_caller(
    request: Request,
    services: ServicesDep,
    token: Annotated[str | None, Depends(cookie_scheme)],
) -> Caller | None:
    """The caller's session if the cookie opens one, else None."""
    try:
        return require_caller(request, services, token)
    except Unauthorized:
        return None


RequiredCaller = Annotated[Caller, Depends(require_caller)]
OptionalCaller = Annotated[Caller | None, Depends(optional_caller)]
# The raw cookie, for async routes that resolve the caller in their own single thread hop
# (a sync dependency costs a hop of its own); documented as the same security scheme.
CookieToken = Annotated[str | None, Depends(cookie_scheme)]


def bind_session(
    request: Request, sessions: SessionsApp, session_id: int, new_token: str | None = None
) -> None:
    """Let error envelopes show a session started during the request, and set its cookie."""
    _bind(request, sessions, session_id)
    request.state.new_token = new_token


def set_session_cookie(response: Response, settings: Settings, token: str) -> None:
    """Hand the browser a (new) ``session_id`` cookie."""
    response.set_cookie(
        COOKIE_NAME,
        token,
        max_age=settings.sign_in_lifetime_seconds,
        path="/",
        secure=settings.cookie_secure,
        httponly=True,
        samesite="lax",
    )
