"""Where a webhook may be sent: http(s) URLs on public addresses (SSRF defence).

An endpoint's URL is checked when it is saved (scheme, host, an address literal) and its
host is resolved again before every attempt; the attempt connects to the address that was
checked, never resolving twice, so a DNS answer cannot change between check and use. Unless
``SESSION_LEDGER_WEBHOOK_ALLOW_PRIVATE_ADDRESSES`` is true, every resolved address must be
global: loopback, link-local, private, shared, multicast, reserved and unspecified ranges
(and IPv4-mapped forms of them) are refused.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from application.errors import InvalidWebhookUrl

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class AddressRefused(Exception):
    """Raised when a host resolves to an address webhooks may not reach (or to none)."""


@dataclass(frozen=True)
class Target:
    """A checked URL: where to connect, and what to say in the request."""

    scheme: str
    host: str
    port: int
    path: str


def parse_url(url: str, allow_private: bool) -> Target:
    """Check an endpoint URL as far as it can be without resolving it; InvalidWebhookUrl."""
    if len(url) > 2000 or any(c.isspace() or ord(c) < 32 for c in url):
        raise InvalidWebhookUrl
    try:
        parts: SplitResult = urlsplit(url)
        port = parts.port
    except ValueError:
        raise InvalidWebhookUrl from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidWebhookUrl
    if parts.username is not None or parts.password is not None:
        raise InvalidWebhookUrl("The webhook URL must not carry credentials.")
    host = parts.hostname
    literal = _literal(host)
    if literal is not None and not allowed(literal, allow_private):
        raise InvalidWebhookUrl(
            "The webhook URL points at a loopback, private or reserved address."
        )
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(parts.scheme, host, port or (443 if parts.scheme == "https" else 80), path)


def _literal(host: str) -> IpAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def allowed(address: IpAddress, allow_private: bool) -> bool:
    """True if webhooks may connect to ``address``."""
    if allow_private:
        return True
    mapped = getattr(address, "ipv4_mapped", None)
    if mapped is not None:
        address = mapped
    return address.is_global and not address.is_multicast


def is_literal(target: Target) -> bool:
    """True if the host is an address literal: :func:`resolve` then looks nothing up."""
    return _literal(target.host) is not None


def resolve(target: Target, allow_private: bool) -> str:
    """Resolve the host once and return the address to connect to; AddressRefused if any
    address it resolves to is not allowed (a host must not mix public and private answers)."""
    literal = _literal(target.host)
    if literal is not None:
        candidates: list[IpAddress] = [literal]
    else:
        try:
            infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
        except OSError as error:
            raise AddressRefused(f"cannot resolve {target.host}: {error}") from None
        candidates = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    if not candidates:
        raise AddressRefused(f"{target.host} has no address")
    refused = [str(a) for a in candidates if not allowed(a, allow_private)]
    if refused:
        raise AddressRefused(f"{target.host} resolves to a refused address ({refused[0]})")
    return str(candidates[0])
