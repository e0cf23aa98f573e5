"""GET /deployment and the /me routes Wacht's SDK calls: memberships and sign-ins everywhere."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from api.deployment_doc import Deployment, deployment_document
from api.deps import Caller, RequiredCaller, ServicesDep, set_session_cookie
from api.envelope import Envelope, ErrorEnvelope, success
from application.me_documents import (
    OrganizationMembershipEntry,
    UserSignInDoc,
    WorkspaceMembershipEntry,
)
from infrastructure.container import Services

router = APIRouter(tags=["Me"])

_401 = {"model": ErrorEnvelope, "description": "No valid session (UNAUTHORIZED)"}
_409 = {"model": ErrorEnvelope, "description": "Lost the race with concurrent changes"}
_NO_ACTIVE = {"model": ErrorEnvelope, "description": "No active sign-in (NO_ACTIVE_SIGN_IN)"}


def _read_responses(ok: Any, description: str, codes: str) -> dict[int | str, dict[str, Any]]:
    return {
        200: {"model": Envelope[ok], "description": description},
        400: {"model": ErrorEnvelope, "description": codes},
        401: _401,
        409: _409,
    }


@router.get(
    "/deployment",
    summary="Get deployment",
    responses={200: {"model": Envelope[Deployment], "description": "This deployment"}},
)
def get_deployment(services: ServicesDep) -> JSONResponse:
    """What Wacht's SDK loads first: hosts, mode, publishable key, auth, B2B and UI settings."""
    organization, workspace = services.directory.permissions()
    return success(deployment_document(services.settings, organization, workspace), None)


@router.get(
    "/me/organization-memberships",
    summary="The active user's organization memberships",
    responses=_read_responses(
        list[OrganizationMembershipEntry],
        "Memberships with organization and roles",
        "NO_ACTIVE_SIGN_IN",
    ),
)
def organization_memberships(services: ServicesDep, caller: RequiredCaller) -> JSONResponse:
    """Each ``id`` is what a sign-in's ``active_organization_membership_id`` can hold."""
    entries = services.me.organization_memberships(caller.session_id)
    return _listed(services, caller, entries)


@router.get(
    "/me/workspace-memberships",
    summary="The active user's workspace memberships",
    responses=_read_responses(
        list[WorkspaceMembershipEntry],
        "Memberships with workspace, organization and roles",
        "NO_ACTIVE_SIGN_IN, INVALID_REQUEST (a malformed org_id)",
    ),
)
def workspace_memberships(
    services: ServicesDep,
    caller: RequiredCaller,
    org_id: Annotated[
        str | None, Query(description="Only this organization's (decimal id)")
    ] = None,
) -> JSONResponse:
    """Each ``id`` is what a sign-in's ``active_workspace_membership_id`` can hold."""
    entries = services.me.workspace_memberships(caller.session_id, org_id)
    return _listed(services, caller, entries)


@router.get(
    "/me/signins",
    summary="The active user's sign-ins on every device",
    responses=_read_responses(
        list[UserSignInDoc], "Live sign-ins, oldest first", "NO_ACTIVE_SIGN_IN"
    ),
)
def sign_ins(services: ServicesDep, caller: RequiredCaller) -> JSONResponse:
    """Every live sign-in of the active user, in any session; ``current`` marks this one."""
    entries = services.me.sign_ins(caller.session_id)
    return _listed(services, caller, entries)


@router.post(
    "/me/signins/{sign_in_id}/signout",
    summary="End one of the active user's sign-ins, on any device",
    responses={
        200: {"model": Envelope[None], "description": "Ended; data is null"},
        400: {"model": ErrorEnvelope, "description": "INVALID_SIGN_IN_ID, NO_ACTIVE_SIGN_IN"},
        401: _401,
        403: {"model": ErrorEnvelope, "description": "Cross-site request (FORBIDDEN_ORIGIN)"},
        409: _409,
    },
)
def sign_out_sign_in(
    services: ServicesDep, caller: RequiredCaller, sign_in_id: str
) -> JSONResponse:
    """Sign the active user out of another browser (``SignedOutRemotely`` there), or out of
    this one (an ordinary sign-out, with a new cookie). The same 400 for a malformed,
    unknown, ended or another user's id."""
    result = services.me.sign_out(caller.session_id, sign_in_id, caller.token)
    response = success(None, services.queries.session_info(caller.session_id))
    if result is not None and result.new_token is not None:
        set_session_cookie(response, services.settings, result.new_token)
    return response


def _listed(services: Services, caller: Caller, entries: list[Any]) -> JSONResponse:
    """A /me list in the envelope, with the caller's session info."""
    data = [entry.model_dump(mode="json") for entry in entries]
    return success(data, services.queries.session_info(caller.session_id))
