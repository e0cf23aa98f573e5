"""Request dependencies: the services, and the caller's session from its cookie (or, in
staging mode, the development session in the URL)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request, Response
from fastapi.security import APIKeyCookie

from application.errors import Unauthorized
from application.session_queries import SessionQueries
from infrastructure.container import Services
from infrastructure.deployment import (
    DEV_SESSION_HEADER,
    DEV_SESSION_PARAMETER,
    SESSION_COOKIE_NAMES,
    is_staging,
)
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

# The hottest routes declare the cookie for the OpenAPI schema without a dependency (each
# costs the request its solving: a tenth of a cached read's CPU for two of them), and take
# the services from the app themselves; they read the cookie with presented_token.
COOKIE_SECURITY: dict[str, Any] = {"security": [{"cookieAuth": []}]}


def services_of(request: Request) -> Services:
    """The services built by the app's lifespan (what ``ServicesDep`` gives)."""
    services: Services = request.app.state.services
    return services


@dataclass(frozen=True)
class Caller:
    """The caller's session and the token that opened it."""

    session_id: int
    token: str


DEV_SESSION_BYTES = DEV_SESSION_PARAMETER.encode()


def _may_name_dev_session(query: bytes) -> bool:
    """Whether a raw query string could hold ``__dev_session__`` once decoded (most hold
    no parameter at all, or none escaped: then it is not parsed for this)."""
    return b"%" in query or DEV_SESSION_BYTES in query


def presented_token(request: Request, settings: Settings) -> str | None:
    """The session token the request carries.

    In staging mode a non-empty ``__dev_session__`` query parameter wins over the cookie
    (Wacht's SDK sends it instead of credentials there). In production the parameter is
    refused like a bad cookie: a token in a URL leaks into logs and Referer headers. The
    cookie is read under the configured name first, then under the other name Wacht's SDKs use.
    """
    if _may_name_dev_session(request.scope.get("query_string", b"")) and (
        DEV_SESSION_PARAMETER in request.query_params
    ):
        if not is_staging(settings):
            raise Unauthorized
        offered = request.query_params[DEV_SESSION_PARAMETER]
        if offered:
            return offered
    for name in (settings.cookie_name, *SESSION_COOKIE_NAMES):
        if name in request.cookies:
            return request.cookies[name]
    return None


def bind_caller(request: Request, sessions: SessionQueries, session_id: int) -> None:
    """Let error envelopes of this request show the caller's session."""
    request.state.session_info = lambda: sessions.session_info(session_id)


def require_caller(
    request: Request,
    services: ServicesDep,
    token: Annotated[str | None, Depends(cookie_scheme)],
) -> Caller:
    """The caller's session; 401 UNAUTHORIZED, one body for every cookie problem (a
    cross-site request was refused before, by ``api.context.refuse_cross_site``).

    (``token`` documents the cookie in the OpenAPI schema; the token read is the one
    :func:`presented_token` finds.)"""
    presented = presented_token(request, services.settings)
    session_id = services.tokens.resolve(presented)
    bind_caller(request, services.queries, session_id)
    return Caller(session_id, presented or "")


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
    request: Request, sessions: SessionQueries, session_id: int, new_token: str | None = None
) -> None:
    """Let error envelopes show a session started during the request, and set its cookie."""
    bind_caller(request, sessions, session_id)
    request.state.new_token = new_token


def set_session_cookie(response: Response, settings: Settings, token: str) -> None:
    """Hand the browser a (new) session cookie; in staging mode also the development session
    header, which Wacht's SDK keeps and sends back as ``__dev_session__``."""
    if is_staging(settings):
        response.headers[DEV_SESSION_HEADER] = token
    response.set_cookie(
        settings.cookie_name,
        token,
        max_age=settings.sign_in_lifetime_seconds,
        path="/",
        secure=settings.cookie_secure,
        httponly=True,
        samesite="lax",
    )
