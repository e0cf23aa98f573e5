"""The /session routes of the contract."""

from __future__ import annotations

import contextlib
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from api.deps import (
    COOKIE_SECURITY,
    RequiredCaller,
    ServicesDep,
    bind_caller,
    optional_caller,
    presented_token,
    require_caller,
    services_of,
)
from api.envelope import Envelope, ErrorEnvelope, success
from api.openapi_contract import id_query
from api.rendered import RenderedBodies
from api.rendering import render
from application.cookie_tokens import Remembered
from application.errors import TemplateNotFound, Unauthorized
from application.read_model import SessionDocument
from application.session_queries import ProjectedNow
from infrastructure.container import Services

router = APIRouter(prefix="/session", tags=["Sessions"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorEnvelope, "description": "Refused; see errors[].code"},
    401: {"model": ErrorEnvelope, "description": "No valid session cookie (UNAUTHORIZED)"},
    409: {"model": ErrorEnvelope, "description": "Lost the race with concurrent changes"},
}
_OK = {"model": Envelope[SessionDocument], "description": "The session"}
Id = Annotated[str | None, Query(**id_query("Decimal 64-bit id"))]
IdOrEmpty = Annotated[
    str | None, Query(**id_query("Decimal 64-bit id; empty clears", empty_allowed=True))
]


# The three routes browsers call most (the SDK polls GET /session and /session/token; the
# switch is the product) are async and do their blocking work in ONE thread-pool hop, the
# caller's cookie included (a sync route with a sync dependency takes two), and solve no
# dependency of their own (see api.deps.COOKIE_SECURITY).


@router.get("", responses={200: _OK}, summary="Get current session", openapi_extra=COOKIE_SECURITY)
async def get_session(request: Request) -> JSONResponse:
    """The caller's session; without a valid cookie, a new anonymous one with its cookie."""
    return await run_in_threadpool(get_session_now, request, services_of(request))


def get_session_now(request: Request, services: Services) -> JSONResponse:
    """GET /session's blocking work (also served by :mod:`api.hot_routes`)."""
    cookie = _remembered(request, services)
    if cookie is not None:
        with contextlib.suppress(Unauthorized):  # its token changed: resolve it in full
            return render(services, services.queries.get_session(cookie.session_id, cookie))
    caller = optional_caller(request, services, None)
    if caller is None:
        started = services.commands.start_session()
        return render(services, started.document, started.new_token)
    return render(services, services.queries.get_session(caller.session_id))


async def get_session_at_once(request: Request, services: Services) -> JSONResponse | None:
    """GET /session answered on the event loop, without a thread, when the cookie is one
    this process remembers and one read (issued from the loop) is all it takes; the
    document is rendered in a thread only if it needs the directory, and not at all if
    nothing it shows changed since the last answer (:mod:`api.rendered`). None: the caller
    answers with :func:`get_session_now` (also when the cookie's token changed)."""
    if not services.queries.reads_at_once:  # a cluster URL, say: the thread does it all
        return None
    cookie = _remembered(request, services)
    if cookie is None:
        return None
    return await _answer_projected(
        request, services, await services.queries.projected_at_once(cookie)
    )


async def _answer_projected(
    request: Request, services: Services, projected: ProjectedNow | None
) -> JSONResponse | None:
    """The session a read on the event loop found current, rendered from memory if it can
    be (and not again if nothing it shows changed), else in a thread; None if not found."""
    if projected is None:
        return None
    queries = services.queries
    rendering = queries.rendering_from_memory(projected)
    if rendering is None:
        return render(services, await run_in_threadpool(queries.document, projected))
    rendered: RenderedBodies = request.app.state.rendered_sessions
    return rendered.answer(
        rendering, projected.now, lambda: render(services, queries.document(projected))
    )


# HEAD answers as GET would, without the body (load balancers and uptime checks use it).
router.add_api_route("", get_session, methods=["HEAD"], include_in_schema=False)


class TokenData(BaseModel):
    """A signed session token and when it expires (epoch milliseconds)."""

    token: str
    expires: int


@router.get(
    "/token",
    responses={
        200: {"model": Envelope[TokenData], "description": "A token for the active sign-in"},
        400: _ERRORS[400],
        401: _ERRORS[401],
        404: {"model": ErrorEnvelope, "description": "No such template (TEMPLATE_NOT_FOUND)"},
    },
    summary="Get JWT token",
    openapi_extra=COOKIE_SECURITY,
)
async def session_token(request: Request, template: str = "default") -> JSONResponse:
    """A short-lived ES256 JWT for the active sign-in; verify it with /.well-known/jwks.json."""
    return await run_in_threadpool(session_token_now, request, services_of(request), template)


def session_token_now(
    request: Request, services: Services, template: str = "default"
) -> JSONResponse:
    """GET /session/token's blocking work (also served by :mod:`api.hot_routes`)."""
    if template != "default":
        require_caller(request, services, None)  # a bad cookie is 401 before a bad template
        raise TemplateNotFound
    remembered = _remembered(request, services)
    if remembered is not None:
        with contextlib.suppress(Unauthorized):  # its token changed: resolve it in full
            token, expires, info = services.queries.session_token(remembered.session_id, remembered)
            return success(TokenData(token=token, expires=expires), info)
    caller = require_caller(request, services, None)
    token, expires, info = services.queries.session_token(caller.session_id)
    return success(TokenData(token=token, expires=expires), info)


async def session_token_at_once(
    request: Request, services: Services, template: str = "default"
) -> JSONResponse | None:
    """GET /session/token answered on the event loop when one read (issued from the loop)
    is all it takes (see ``SessionQueries.session_token_at_once``); None: the caller
    answers with :func:`session_token_now`."""
    if not services.queries.reads_at_once or template != "default":
        return None
    cookie = _remembered(request, services)
    if cookie is None:
        return None
    answer = await services.queries.session_token_at_once(cookie)
    if answer is None:
        return None
    token, expires, info = answer
    return success(TokenData(token=token, expires=expires), info)


def _remembered(request: Request, services: Services) -> Remembered | None:
    """The caller's cookie if this process found it valid before (checked by the read that
    follows, in the same statement), bound for error envelopes; else None."""
    try:
        cookie = services.tokens.remembered(presented_token(request, services.settings))
    except Unauthorized:
        return None
    if cookie is not None:
        bind_caller(request, services.queries, cookie.session_id)
    return cookie


@router.post(
    "/switch-sign-in",
    responses={200: _OK, **_ERRORS},
    summary="Switch active sign-in",
    openapi_extra=COOKIE_SECURITY,
)
async def switch_sign_in(request: Request, sign_in_id: Id = None) -> JSONResponse:
    """Make a live sign-in of this session the active one (400 INVALID_SIGN_IN_ID otherwise)."""
    return await run_in_threadpool(switch_sign_in_now, request, services_of(request), sign_in_id)


async def switch_sign_in_at_once(
    request: Request, services: Services, sign_in_id: str | None = None
) -> JSONResponse | None:
    """POST /session/switch-sign-in decided and appended from the event loop, when the
    cookie is one this process remembers and the common case holds (see
    :meth:`application.unit_of_work.UnitOfWork.run_at_once`). None: the caller answers
    with :func:`switch_sign_in_now`, from the start."""
    if not services.commands.switches_at_once:
        return None
    cookie = _remembered(request, services)
    if cookie is None:
        return None
    document = await services.commands.switch_sign_in_at_once(cookie.session_id, sign_in_id, cookie)
    if document is not None:
        return render(services, document)
    # A switch to the active sign-in records nothing: the stored session answers it.
    already = await services.queries.switched_already_at_once(cookie, sign_in_id)
    return await _answer_projected(request, services, already)


def switch_sign_in_now(
    request: Request, services: Services, sign_in_id: str | None = None
) -> JSONResponse:
    """POST /session/switch-sign-in's blocking work (also served by :mod:`api.hot_routes`).
    A cookie this process remembers is not read again: the switch's append checks it."""
    commands = services.commands
    cookie = _remembered(request, services)
    if cookie is not None:
        with contextlib.suppress(Unauthorized):  # its token changed: resolve it in full
            return render(services, commands.switch_sign_in(cookie.session_id, sign_in_id, cookie))
    caller = require_caller(request, services, None)
    return render(services, commands.switch_sign_in(caller.session_id, sign_in_id))


@router.post("/sign-out", responses={200: _OK, **_ERRORS}, summary="Sign out")
def sign_out(services: ServicesDep, caller: RequiredCaller, sign_in_id: Id = None) -> JSONResponse:
    """End one sign-in, or all of them when ``sign_in_id`` is absent; rotates the cookie."""
    result = services.commands.sign_out(caller.session_id, sign_in_id, caller.token)
    return render(services, result.document, result.new_token)


@router.post(
    "/switch-organization", responses={200: _OK, **_ERRORS}, summary="Switch active organization"
)
def switch_organization(
    services: ServicesDep, caller: RequiredCaller, organization_id: IdOrEmpty = ""
) -> JSONResponse:
    """Activate the active user's membership of an organization; empty clears it."""
    document = services.commands.switch_organization(caller.session_id, organization_id or "")
    return render(services, document)


@router.post(
    "/switch-workspace", responses={200: _OK, **_ERRORS}, summary="Switch active workspace"
)
def switch_workspace(
    services: ServicesDep, caller: RequiredCaller, workspace_id: IdOrEmpty = ""
) -> JSONResponse:
    """Activate the active user's membership of a workspace and its organization; empty clears."""
    document = services.commands.switch_workspace(caller.session_id, workspace_id or "")
    return render(services, document)
