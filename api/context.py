"""Where a request comes from: client address (proxy-aware), user agent, request id, origin."""

from __future__ import annotations

import functools
import ipaddress
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, Request

from api.logs import REQUEST_ID
from application.errors import ForbiddenOrigin
from application.ports import RequestContext
from application.request_context import current_request
from infrastructure.settings import Settings

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{8,128}")


def request_id(request: Request) -> str:
    """The request's id: the caller's ``X-Request-Id`` if sane, else a new one; memoised."""
    existing = getattr(request.state, "request_id", None)
    if isinstance(existing, str):
        return existing
    offered = request.headers.get("x-request-id", "")
    value = offered if _REQUEST_ID.fullmatch(offered) else os.urandom(16).hex()  # 32 hex digits
    request.state.request_id = value
    return value


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def _trusted(address: str, settings: Settings) -> bool:
    """Whether ``address`` is one of the proxies ``trusted_proxies`` names."""
    if not settings.trusted_proxies:
        return False
    return _trusted_among(address, tuple(settings.trusted_proxies))


@functools.lru_cache(maxsize=4096)
def _trusted_among(address: str, proxies: tuple[str, ...]) -> bool:
    """(Remembered: parsing the same few addresses on every request cost a percent.)"""
    ip = _ip(address)
    return ip is not None and any(ip in _network(entry) for entry in proxies)


@functools.lru_cache(maxsize=64)
def _network(entry: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(entry, strict=False)


def from_trusted_proxy(request: Request, settings: Settings) -> bool:
    """Whether the request's peer is a trusted proxy (so its ``X-Forwarded-*`` count)."""
    return _trusted(request.client.host if request.client else "", settings)


def client_address(request: Request, settings: Settings) -> str:
    """The client's address: the peer, unless the peer is a trusted proxy; then the
    ``X-Forwarded-For`` entries are walked from the right (each written by the hop that saw
    it) past every trusted proxy, and the first other address is the client's. Entries to
    its left were written by the client and are never believed; a client that reaches the
    service directly cannot choose its address.
    """
    address = request.client.host if request.client else ""
    if not _trusted(address, settings):
        return address
    forwarded = [a.strip() for a in request.headers.get("x-forwarded-for", "").split(",")]
    for entry in reversed([a for a in forwarded if a]):
        if _ip(entry) is None:
            break  # garbage from a hop: keep the last address a trusted proxy vouched for
        address = entry
        if not _trusted(entry, settings):
            break
    return address


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
    return _network_of(address)


@functools.lru_cache(maxsize=4096)
def _network_of(address: str) -> str:
    """The /24 (IPv4) or /48 (IPv6) network of an address, "" if it is not one (parsing
    addresses was a tenth of a switch's CPU: a browser's address repeats)."""
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
        lambda value: services.digester.digest("client-address", value).hex(),
    )
    return RequestContext(address, raw.user_agent, raw.request_id)


class AuditSource:
    """A request's audit context, built on first use (an HMAC of the address among it: most
    requests record nothing) and kept. (``functools.cache`` over a partial did the same at
    the cost of copying wrapper attributes on every request.)"""

    __slots__ = ("_built", "_request")

    def __init__(self, request: Request) -> None:
        self._request = request
        self._built: RequestContext | None = None

    def __call__(self) -> RequestContext:
        if self._built is None:
            self._built = audit_context(self._request)
        return self._built


@contextmanager
def request_scope(request: Request) -> Iterator[str]:
    """While a request is served: its id in the logs, its audit source for the commands it
    runs. Yields the id, which every answer carries."""
    identifier = request_id(request)
    logged = REQUEST_ID.set(identifier)
    ready = hasattr(request.app.state, "services")  # not when serving the bare schema
    context = current_request.set(AuditSource(request) if ready else None)
    try:
        yield identifier
    finally:
        current_request.reset(context)
        REQUEST_ID.reset(logged)


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def check_origin(request: Request) -> None:
    """Refuse a state-changing request that a page on another site sent (CSRF defence),
    with or without the cookie: a cookieless cross-site sign-in would sign the victim's
    browser into the attacker's account (login CSRF).

    With ``Origin``, it must pass :func:`origin_allowed`; without it (older browsers,
    same-origin navigations), ``Sec-Fetch-Site: cross-site`` is refused. Requests that
    carry neither are not a browser's cross-site request and pass.
    """
    if request.method in SAFE_METHODS:
        return
    origin = request.headers.get("origin")
    if origin is not None:
        if not origin_allowed(request, origin):
            raise ForbiddenOrigin
        return
    if request.headers.get("sec-fetch-site", "").lower() == "cross-site":
        raise ForbiddenOrigin


async def refuse_cross_site(request: Request) -> None:
    """App-wide dependency: :func:`check_origin` on every route (async: no thread hop)."""
    check_origin(request)


def origin_allowed(request: Request, origin: str) -> bool:
    """Whether a request from ``origin`` may change state: this service's own origin (scheme
    and host; through trusted proxies, ``X-Forwarded-Proto`` and ``X-Forwarded-Host``) or
    one of :func:`infrastructure.deployment.allowed_origins` (the configured ones and the
    deployment's frontend).
    The one place that decides it."""
    services = request.app.state.services
    if origin.lower() in services.allowed_origins:
        return True
    if origin == "null":
        return False
    settings = services.settings
    host = request.headers.get("host", "")
    scheme = request.scope.get("scheme", "http")  # what request.url.scheme is, unbuilt
    if from_trusted_proxy(request, settings):
        host = request.headers.get("x-forwarded-host", host).split(",")[-1].strip()
        scheme = request.headers.get("x-forwarded-proto", scheme).split(",")[-1].strip()
    parts = urlsplit(origin)
    return parts.scheme.lower() == scheme.lower() and parts.netloc.lower() == host.lower()
