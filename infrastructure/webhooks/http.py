"""One webhook attempt over HTTP/1.1: connect to the checked address, POST, read a bounded answer.

Written on asyncio streams rather than a client library because the attempt must connect to
the address that was checked (not resolve the host again) while still presenting the host
name for TLS (SNI and certificate check) and in ``Host``; and because a receiver must not be
able to make us read without limit or wait without end: the whole exchange has one deadline,
the status line and headers are capped at ``HEAD_LIMIT`` bytes, the body at ``BODY_LIMIT``.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass

from infrastructure.webhooks.addresses import Target

HEAD_LIMIT = 16 * 1024
BODY_LIMIT = 1024  # what an attempt keeps of the answer (and all it reads of it)
USER_AGENT = "session-ledger-webhooks/1"


@dataclass(frozen=True)
class Outcome:
    """What one attempt found: the status (None if there was no answer), how long it took,
    what went wrong, and the start of the answer's body."""

    status: int | None
    latency_ms: int
    error: str | None = None
    response: str | None = None

    @property
    def ok(self) -> bool:
        """A 2xx answer within the timeout."""
        return self.status is not None and 200 <= self.status < 300


def _request(target: Target, headers: Mapping[str, str], body: bytes) -> bytes:
    host = f"[{target.host}]" if ":" in target.host else target.host
    default = 443 if target.scheme == "https" else 80
    lines = [
        f"POST {target.path} HTTP/1.1",
        f"Host: {host}" + ("" if target.port == default else f":{target.port}"),
        f"User-Agent: {USER_AGENT}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        "Connection: close",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def _exchange(
    target: Target, address: str, request: bytes, deadline: float
) -> tuple[int, bytes]:
    context = ssl.create_default_context() if target.scheme == "https" else None
    reader, writer = await asyncio.open_connection(
        address,
        target.port,
        ssl=context,
        server_hostname=target.host if context else None,
        limit=HEAD_LIMIT,
    )
    try:
        writer.write(request)
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
            raise ValueError(f"not an HTTP answer: {status_line[:80]!r}")
        status = int(parts[1])
        chunked = b"transfer-encoding: chunked" in head.lower()
        body = b""
        try:
            while len(body) < BODY_LIMIT:
                remaining = deadline - time.monotonic()
                async with asyncio.timeout(remaining):
                    chunk = await reader.read(BODY_LIMIT - len(body))
                if not chunk:
                    break
                body += chunk
        except (TimeoutError, OSError):
            pass  # the status decides; the body is only kept for the record
        return status, _dechunk(body) if chunked else body
    finally:
        writer.close()


async def post(
    target: Target, address: str, headers: Mapping[str, str], body: bytes, timeout: float
) -> Outcome:
    """POST ``body`` to ``target`` at ``address``; never raises for network trouble."""
    started = time.monotonic()
    deadline = started + timeout
    try:
        async with asyncio.timeout_at(asyncio.get_running_loop().time() + timeout):
            status, answer = await _exchange(
                target, address, _request(target, headers, body), deadline
            )
    except TimeoutError:
        return Outcome(None, _ms(started), f"no answer within {timeout:g}s")
    except asyncio.LimitOverrunError:
        return Outcome(None, _ms(started), f"answer headers over {HEAD_LIMIT} bytes")
    except (OSError, ValueError, asyncio.IncompleteReadError, ssl.SSLError) as error:
        reason = " ".join(str(error).split()) or type(error).__name__
        return Outcome(None, _ms(started), f"{type(error).__name__}: {reason}"[:500])
    text = answer.decode("utf-8", "replace")
    problem = None if 200 <= status < 300 else f"HTTP {status}"
    return Outcome(status, _ms(started), problem, text)


def _dechunk(raw: bytes) -> bytes:
    """The data of the complete chunks at the start of a chunked body (what we read of it)."""
    data = b""
    while b"\r\n" in raw:
        size_line, rest = raw.split(b"\r\n", 1)
        try:
            size = int(size_line.split(b";", 1)[0], 16)
        except ValueError:
            break
        if size == 0:
            break
        data += rest[:size]
        raw = rest[size + 2 :]
    return data


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
