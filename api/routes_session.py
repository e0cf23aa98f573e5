"""The /session routes of the contract."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from api.deps import OptionalCaller, RequiredCaller, ServicesDep
from api.envelope import Envelope, ErrorEnvelope, success
from api.openapi_contract import id_query
from api.rendering import render
from application.read_model import SessionDocument
from domain.errors import TemplateNotFound

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


@router.get("", responses={200: _OK}, summary="Get current session")
def get_session(request: Request, services: ServicesDep, caller: OptionalCaller) -> JSONResponse:
    """The caller's session; without a valid cookie, a new anonymous one with its cookie."""
    if caller is None:
        started = services.sessions.start_session()
        return render(services, started.document, started.new_token)
    return render(services, services.sessions.get_session(caller.session_id))


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
)
def session_token(
    services: ServicesDep, caller: RequiredCaller, template: str = "default"
) -> JSONResponse:
    """A short-lived ES256 JWT for the active sign-in; verify it with /.well-known/jwks.json."""
    if template != "default":
        raise TemplateNotFound
    token, expires = services.sessions.session_token(caller.session_id)
    info = services.sessions.session_info(caller.session_id)
    return success(TokenData(token=token, expires=expires), info)


@router.post("/switch-sign-in", responses={200: _OK, **_ERRORS}, summary="Switch active sign-in")
def switch_sign_in(
    services: ServicesDep, caller: RequiredCaller, sign_in_id: Id = None
) -> JSONResponse:
    """Make a live sign-in of this session the active one (400 INVALID_SIGN_IN_ID otherwise)."""
    return render(services, services.sessions.switch_sign_in(caller.session_id, sign_in_id))


@router.post("/sign-out", responses={200: _OK, **_ERRORS}, summary="Sign out")
def sign_out(services: ServicesDep, caller: RequiredCaller, sign_in_id: Id = None) -> JSONResponse:
    """End one sign-in, or all of them when ``sign_in_id`` is absent; rotates the cookie."""
    result = services.sessions.sign_out(caller.session_id, sign_in_id, caller.token)
    return render(services, result.document, result.new_token)


@router.post(
    "/switch-organization", responses={200: _OK, **_ERRORS}, summary="Switch active organization"
)
def switch_organization(
    services: ServicesDep, caller: RequiredCaller, organization_id: IdOrEmpty = ""
) -> JSONResponse:
    """Activate the active user's membership of an organization; empty clears it."""
    document = services.sessions.switch_organization(caller.session_id, organization_id or "")
    return render(services, document)


@router.post(
    "/switch-workspace", responses={200: _OK, **_ERRORS}, summary="Switch active workspace"
)
def switch_workspace(
    services: ServicesDep, caller: RequiredCaller, workspace_id: IdOrEmpty = ""
) -> JSONResponse:
    """Activate the active user's membership of a workspace and its organization; empty clears."""
    document = services.sessions.switch_workspace(caller.session_id, workspace_id or "")
    return render(services, document)
