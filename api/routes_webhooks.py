"""Admin routes for webhooks (bearer-protected like the other admin routes): the catalogue,
endpoints, secret rotation, replay, deliveries and their attempts. See docs/webhooks.md."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from api.deps import ServicesDep
from api.envelope import ErrorEnvelope, success
from api.routes_admin import require_admin
from application.errors import InvalidRequest
from domain.ids import parse_id

router = APIRouter(
    prefix="/admin/webhooks",
    tags=["Webhooks"],
    dependencies=[Depends(require_admin)],
    responses={401: {"model": ErrorEnvelope, "description": "Admin token required"}},
)


class NewEndpoint(BaseModel):
    """An endpoint to create; without event types it subscribes to the whole catalogue."""

    url: str = Field(max_length=2000)
    event_types: list[str] | None = Field(default=None, max_length=100)
    enabled: bool = True


class EndpointChange(BaseModel):
    """What to change of an endpoint; ``enabled: true`` also clears an automatic disable."""

    url: str | None = Field(default=None, max_length=2000)
    event_types: list[str] | None = Field(default=None, max_length=100)
    enabled: bool | None = None


class Rotation(BaseModel):
    """How long the previous secret keeps signing too."""

    overlap_seconds: float = Field(default=24 * 3600, ge=0, le=30 * 24 * 3600)


class Replay(BaseModel):
    """A window of history: after a position, and/or between two times (RFC 3339)."""

    since_position: int | None = Field(default=None, ge=0)
    start: datetime | None = None
    end: datetime | None = None


def _endpoint_id(raw: str) -> int:
    endpoint_id = parse_id(raw)
    if endpoint_id is None:
        raise InvalidRequest("The endpoint id is not valid.")
    return endpoint_id


def _zoned(moment: datetime | None) -> datetime | None:
    if moment is not None and moment.tzinfo is None:
        raise InvalidRequest("Times need a time zone, e.g. 2026-01-01T10:00:00Z.")
    return moment


@router.get("/catalogue", summary="Webhook event types with example bodies")
def catalogue(services: ServicesDep) -> JSONResponse:
    """Every event type: its name, what it means, and an example body."""
    return success({"events": services.webhooks.catalogue()}, None)


@router.get("/endpoints", summary="Webhook endpoints")
def list_endpoints(services: ServicesDep) -> JSONResponse:
    """Every endpoint (never a secret)."""
    return success({"endpoints": [e.as_json() for e in services.webhooks.endpoints()]}, None)


@router.post("/endpoints", summary="Add a webhook endpoint", status_code=201)
def create_endpoint(body: NewEndpoint, services: ServicesDep) -> JSONResponse:
    """Create an endpoint; the answer holds its signing secret, shown this once."""
    endpoint, secret = services.webhooks.create_endpoint(body.url, body.event_types, body.enabled)
    return success({"endpoint": endpoint.as_json(), "secret": secret}, None, status=201)


@router.get("/endpoints/{endpoint_id}", summary="A webhook endpoint")
def get_endpoint(endpoint_id: str, services: ServicesDep) -> JSONResponse:
    """One endpoint, with its state and counters."""
    endpoint = services.webhooks.endpoint(_endpoint_id(endpoint_id))
    return success({"endpoint": endpoint.as_json()}, None)


@router.patch("/endpoints/{endpoint_id}", summary="Change a webhook endpoint")
def update_endpoint(endpoint_id: str, body: EndpointChange, services: ServicesDep) -> JSONResponse:
    """Change the URL or event types, or enable (re-enable) or disable it."""
    endpoint = services.webhooks.update_endpoint(
        _endpoint_id(endpoint_id), body.url, body.event_types, body.enabled
    )
    return success({"endpoint": endpoint.as_json()}, None)


@router.post("/endpoints/{endpoint_id}/rotate-secret", summary="Rotate an endpoint's secret")
def rotate_secret(endpoint_id: str, body: Rotation, services: ServicesDep) -> JSONResponse:
    """A new secret, shown this once; both sign deliveries until the overlap ends."""
    endpoint, secret = services.webhooks.rotate_secret(
        _endpoint_id(endpoint_id), body.overlap_seconds
    )
    return success({"endpoint": endpoint.as_json(), "secret": secret}, None)


@router.post("/endpoints/{endpoint_id}/replay", summary="Replay history to an endpoint")
def replay(endpoint_id: str, body: Replay, services: ServicesDep) -> JSONResponse:
    """Deliver a window again (or back-fill it), with the original webhook ids."""
    count = services.webhooks.replay(
        _endpoint_id(endpoint_id), body.since_position, _zoned(body.start), _zoned(body.end)
    )
    return success({"queued": count}, None)


@router.get("/endpoints/{endpoint_id}/deliveries", summary="An endpoint's deliveries")
def deliveries(
    endpoint_id: str,
    services: ServicesDep,
    status: Literal["pending", "delivered", "failed"] | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> JSONResponse:
    """Deliveries, newest event first, optionally of one status."""
    found = services.webhooks.deliveries(_endpoint_id(endpoint_id), status, limit)
    return success({"deliveries": found}, None)


@router.get(
    "/endpoints/{endpoint_id}/deliveries/{message_id}/attempts", summary="A delivery's attempts"
)
def attempts(endpoint_id: str, message_id: str, services: ServicesDep) -> JSONResponse:
    """Every attempt: when, to which address, status, latency, error, start of the answer."""
    if len(message_id) > 64:
        raise InvalidRequest("The message id is not valid.")
    found = services.webhooks.attempts(_endpoint_id(endpoint_id), message_id)
    return success({"attempts": found}, None)


@router.get("/status", summary="Webhook delivery status")
def status(services: ServicesDep) -> JSONResponse:
    """Follower lag, and each endpoint's backlog, failures and state."""
    return success(services.webhooks.status(), None)
