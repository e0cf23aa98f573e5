"""Where a request comes from: client address (proxy-aware), user agent, request id, origin."""

from __future__ import annotations

import ipaddress
import re
import uuid
from collections.abc import Callable
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, Request

from application.ports import RequestContext
from domain.errors import ForbiddenOrigin
from infrastructure.deployment import SESSION_COOKIE_NAMES, allowed_origins
from infrastructure.settings import Settings

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{8,128}")


def request_id(request: Request) -> str:
    """The request's id: the caller's ``X-Request-Id`` if sane, else a new one; memoised."""
    existing = getattr(request.state, "request_id", None)
    if isinstance(existing, str):
        return existing
    offered = request.headers.get("x-request-id", "")
    value = offered if _REQUEST_ID.fullmatch(offered) else uuid.uuid4().hex
    request.state.request_id = value
    return value


def client_address(request: Request, settings: Settings) -> str:
    """The client's address; from X-Forwarded-For only through ``trusted_proxy_count`` proxies.

    Each trusted proxy appends the address it saw, so the client is the entry that many
    places from the end; anything further left was written by the client and is not trusted.
    """
    peer = request.client.host if request.client else ""
    hops = settings.trusted_proxy_count
    if hops == 0:
        return peer
    forwarded = [
        a.strip() for a in request.headers.get("x-forwarded-for", "").split(",") if a.strip()
    ]
    return forwarded[-hops] if len(forwarded) >= hops else (forwarded[0] if forwarded else peer)


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.services.settings
    return settings


def request_context(request: Request) -> RequestContext:
    """The context recorded with a command."""
    settings = _settings(request)
    return RequestContext(
        client_address=client_address(request, settings),
        user_agent=request.headers.get("user-agent", "")[:512],
        request_id=request_id(request),
    )


ContextDep = Annotated[RequestContext, Depends(request_context)]


def audit_address(address: str, mode: str, digest: Callable[[str], str]) -> str:
    """The client address as the audit trail keeps it: whole, truncated, or keyed-hashed.

    Truncation keeps the network (/24 for IPv4, /48 for IPv6), enough for "from where".
    """
    if mode == "whole" or not address:
        return address
    if mode == "hashed":
        return "hmac:" + digest(address)[:32]
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return ""
    prefix = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False).network_address)


def audit_context(request: Request) -> RequestContext:
    """The context recorded in the events of this request's commands."""
    services = request.app.state.services
    raw = request_context(request)
    address = audit_address(
        raw.client_address,
        services.settings.audit_client_address,
        lambda value: services.sessions.digester.digest("client-address", value).hex(),
    )
    return RequestContext(address, raw.user_agent, raw.request_id)


def check_origin(request: Request) -> None:
    """Refuse a cookie-carrying POST that a page on another site sent (CSRF defence).

    ``Origin`` must be this service's own origin (scheme and host; through trusted proxies,
    ``X-Forwarded-Proto`` and ``X-Forwarded-Host``) or one of :func:`allowed_origins` (the
    configured ones and the deployment's frontend); without ``Origin``,
    ``Sec-Fetch-Site: cross-site`` is refused. Requests without the cookie are not
    cookie-authenticated and pass (they start sessions of their own).
    """
    if request.method != "POST" or not any(n in request.cookies for n in SESSION_COOKIE_NAMES):
        return
    settings = _settings(request)
    origin = request.headers.get("origin")
    if origin is not None:
        if origin.lower() in allowed_origins(settings):
            return
        host = request.headers.get("host", "")
        scheme = request.url.scheme
        if settings.trusted_proxy_count:
            host = request.headers.get("x-forwarded-host", host).split(",")[-1].strip()
            scheme = request.headers.get("x-forwarded-proto", scheme).split(",")[-1].strip()
        parts = urlsplit(origin)
        same = parts.scheme.lower() == scheme.lower() and parts.netloc.lower() == host.lower()
        if origin == "null" or not same:
            raise ForbiddenOrigin
        return
    if request.headers.get("sec-fetch-site", "").lower() == "cross-site":
        raise ForbiddenOrigin
