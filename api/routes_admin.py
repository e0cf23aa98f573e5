"""Admin routes for auditors, present only when SESSION_LEDGER_ADMIN_TOKEN is set.

Authentication is the admin token, as ``Authorization: Bearer <token>`` or as the password
of HTTP Basic (so a browser can open the timeline page), compared in constant time.
"""

from __future__ import annotations

import base64
import hmac
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse

from api.deps import ServicesDep
from api.envelope import ErrorEnvelope, success
from api.timeline import render_timeline
from application.errors import AdminUnauthorized, InvalidRequest
from domain.ids import parse_id
from infrastructure.container import Services


def require_admin(request: Request, services: ServicesDep) -> None:
    """Accept the admin token as a bearer token or as the Basic password."""
    expected = services.settings.admin_token
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    offered = ""
    if scheme.lower() == "bearer":
        offered = value.strip()
    elif scheme.lower() == "basic":
        try:
            offered = base64.b64decode(value.strip()).decode().partition(":")[2]
        except ValueError:
            offered = ""
    if expected is None or not hmac.compare_digest(
        offered.encode(), expected.get_secret_value().encode()
    ):
        raise AdminUnauthorized


router = APIRouter(
    prefix="/admin",
    tags=["Admin"],
    dependencies=[Depends(require_admin)],
    responses={401: {"model": ErrorEnvelope, "description": "Admin token required"}},
)


def _session_id(raw: str) -> int:
    session_id = parse_id(raw)
    if session_id is None:
        raise InvalidRequest("The session id is not valid.")
    return session_id


def _catch_up(services: Services) -> None:
    for projector in services.projectors:
        projector.catch_up()


@router.get("/sessions/{session_id}/events", summary="A session's events")
def session_events(session_id: str, services: ServicesDep) -> JSONResponse:
    """Ordered events: position, version, type, time, data (no secrets), request context."""
    events = services.audit.history(_session_id(session_id))
    return success({"events": [e.as_json() for e in events]}, None)


@router.get("/sessions/{session_id}/state", summary="A session as it was")
def session_state(
    session_id: str,
    services: ServicesDep,
    version: Annotated[int | None, Query(ge=1)] = None,
    at: Annotated[datetime | None, Query(description="RFC 3339 time")] = None,
) -> JSONResponse:
    """The session at ``version`` or at time ``at``, in the contract's Session shape."""
    if (version is None) == (at is None):
        raise InvalidRequest("Give exactly one of 'version' and 'at'.")
    if at is not None and at.tzinfo is None:
        raise InvalidRequest("'at' needs a time zone, e.g. 2026-01-01T10:00:00Z.")
    document, found = services.audit.state(_session_id(session_id), version=version, at=at)
    return success({"version": found, "session": document.model_dump(mode="json")}, None)


@router.get("/users/{user_id}/sign-ins", summary="A user's sign-ins")
def user_sign_ins(user_id: str, services: ServicesDep) -> JSONResponse:
    """Every sign-in of a user, across sessions, with how it ended."""
    parsed = parse_id(user_id)
    if parsed is None:
        raise InvalidRequest("The user id is not valid.")
    _catch_up(services)
    return success({"sign_ins": services.audit.user_sign_ins(parsed)}, None)


@router.get("/audit/verify", summary="Verify the history")
def audit_verify(
    services: ServicesDep, head: Annotated[str | None, Query(pattern="^[0-9a-f]{64}$")] = None
) -> JSONResponse:
    """Check every event against its seal; the first broken link, and the chain head."""
    report = services.audit.verify(head)
    data = {
        "ok": report.ok,
        "problem": report.problem,
        "events_checked": report.events_checked,
        "snapshots_checked": report.snapshots_checked,
        "head": {"position": report.head_position, "hash": report.head_hash},
        "head_found": report.head_found,
    }
    return success(data, None)


@router.get("/sessions/{session_id}/timeline", response_class=HTMLResponse, summary="Timeline page")
def session_timeline(session_id: str, services: ServicesDep) -> HTMLResponse:
    """One session's history on a timeline, for a browser."""
    parsed = _session_id(session_id)
    events = services.audit.history(parsed)
    states = [services.audit.state(parsed, version=e.version)[0] for e in events]
    page = render_timeline(parsed, events, states)
    return HTMLResponse(page, headers={"Cache-Control": "no-store"})
