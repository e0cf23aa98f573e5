"""One webhook attempt over HTTP/1.1: connect to the checked address, POST, read a bounded answer.

Written on asyncio streams rather than a client library because the attempt must connect to
the address that was checked (not resolve the host again) while still presenting the host
name for TLS (SNI and certificate check) and in ``Host``; and because a receiver must not be
able to make us read without limit or wait without end: the whole exchange has one deadline,
the status line and headers are capped at ``HEAD_LIMIT`` bytes, the body at ``BODY_LIMIT``.

Connections are kept alive (:class:`Connections`), keyed by scheme, host, port and the
checked address: an attempt reuses one only if its own resolution checked the same address.
A connection goes back only after an answer read whole within the limits and framed by its
length (or chunks), and is dropped after ``IDLE_SECONDS`` unused, before a receiver's own
keep-alive timeout would close it under us. A request on a reused connection that the
receiver had closed (nothing at all came back) is sent once more on a new one.
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
IDLE_SECONDS = 4.0
Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]
Key = tuple[str, str, int, str]


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


class Connections:
    """Idle keep-alive connections of one event loop, by (scheme, host, port, address)."""

    def __init__(self, per_key: int = 64) -> None:
        self.per_key = per_key
        self._idle: dict[Key, list[tuple[float, Stream]]] = {}

    def take(self, key: Key) -> Stream | None:
        """An idle connection for ``key`` that is still open, or None."""
        idle = self._idle.get(key, [])
        while idle:
            since, stream = idle.pop()
            if _usable(since, stream):
                return stream
            stream[1].close()
        return None

    def give(self, key: Key, stream: Stream) -> None:
        """Keep a connection whose exchange ended cleanly."""
        idle = self._idle.setdefault(key, [])
        if len(idle) >= self.per_key:
            stream[1].close()
            return
        idle.append((time.monotonic(), stream))

    def idle(self) -> int:
        """How many idle connections are kept."""
        return sum(len(idle) for idle in self._idle.values())

    def prune(self) -> None:
        """Close the connections idle too long, or closed by their receivers."""
        for key, idle in list(self._idle.items()):
            keep = []
            for since, stream in idle:
                if _usable(since, stream):
                    keep.append((since, stream))
                else:
                    stream[1].close()
            if keep:
                self._idle[key] = keep
            else:
                del self._idle[key]

    def close(self) -> None:
        """Close every idle connection."""
        for idle in self._idle.values():
            for _, (_, writer) in idle:
                writer.close()
        self._idle.clear()


def _usable(since: float, stream: Stream) -> bool:
    """Idle for less than ``IDLE_SECONDS`` and not closed by either side."""
    reader, writer = stream
    fresh = time.monotonic() - since < IDLE_SECONDS
    return fresh and not writer.is_closing() and not reader.at_eof()


def _request(target: Target, headers: Mapping[str, str], body: bytes) -> bytes:
    host = f"[{target.host}]" if ":" in target.host else target.host
    default = 443 if target.scheme == "https" else 80
    lines = [
        f"POST {target.path} HTTP/1.1",
        f"Host: {host}" + ("" if target.port == default else f":{target.port}"),
        f"User-Agent: {USER_AGENT}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def _open(target: Target, address: str) -> Stream:
    context = ssl.create_default_context() if target.scheme == "https" else None
    return await asyncio.open_connection(
        address,
        target.port,
        ssl=context,
        server_hostname=target.host if context else None,
        limit=HEAD_LIMIT,
    )


@dataclass
class _Answer:
    status: int
    body: bytes
    reusable: bool


async def _read_answer(reader: asyncio.StreamReader, deadline: float) -> _Answer:
    """The answer; a body not in by ``deadline`` is cut short (the status decides; the body
    is only kept for the record) and the connection is not reused."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise ValueError(f"not an HTTP answer: {lines[0][:80]!r}")
    status = int(parts[1])
    fields: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        fields[name.strip().lower()] = value.strip().lower()
    keep = parts[0] == "HTTP/1.1" and "close" not in fields.get("connection", "")
    if status < 200 or status in (204, 304):
        return _Answer(status, b"", keep)
    try:
        async with asyncio.timeout_at(deadline):
            return await _read_body(reader, status, fields, keep)
    except (TimeoutError, OSError, ValueError, asyncio.IncompleteReadError):
        return _Answer(status, b"", False)


async def _read_body(
    reader: asyncio.StreamReader, status: int, fields: Mapping[str, str], keep: bool
) -> _Answer:
    if "chunked" in fields.get("transfer-encoding", ""):
        body, whole = await _read_chunks(reader)
        return _Answer(status, body, keep and whole)
    length = fields.get("content-length", "")
    if length.isdigit() and int(length) <= BODY_LIMIT:
        return _Answer(status, await reader.readexactly(int(length)), keep)
    body = b""  # too long to read whole, or delimited by the end of the connection
    while len(body) < BODY_LIMIT and (chunk := await reader.read(BODY_LIMIT - len(body))):
        body += chunk
    return _Answer(status, body, False)


async def _read_chunks(reader: asyncio.StreamReader) -> tuple[bytes, bool]:
    """The data of a chunked body, and whether it was read whole within ``BODY_LIMIT``."""
    data = b""
    while len(data) <= BODY_LIMIT:
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";", 1)[0].strip() or b"x", 16)
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers
                pass
            return data, True
        if len(data) + size > BODY_LIMIT:
            break
        data += (await reader.readexactly(size + 2))[:size]
    return data[:BODY_LIMIT], False


async def _exchange(
    target: Target,
    address: str,
    request: bytes,
    pool: Connections | None,
    deadline: float,
    reuse: bool = True,
) -> _Answer:
    key: Key = (target.scheme, target.host, target.port, address)
    reused = pool.take(key) if pool is not None and reuse else None
    stream = reused or await _open(target, address)
    try:
        stream[1].write(request)
        await stream[1].drain()
        answer = await _read_answer(stream[0], deadline)
    except (ConnectionError, asyncio.IncompleteReadError) as error:
        stream[1].close()
        nothing = not isinstance(error, asyncio.IncompleteReadError) or not error.partial
        if reused is None or not nothing:
            raise
        # The receiver closed it while it was idle: once more, on a new connection.
        return await _exchange(target, address, request, pool, deadline, reuse=False)
    except BaseException:
        stream[1].close()
        raise
    if answer.reusable and pool is not None:
        pool.give(key, stream)
    else:
        stream[1].close()
    return answer


async def post(
    target: Target,
    address: str,
    headers: Mapping[str, str],
    body: bytes,
    timeout: float,
    pool: Connections | None = None,
) -> Outcome:
    """POST ``body`` to ``target`` at ``address`` (on a kept-alive connection of ``pool`` if
    one is idle); never raises for network trouble."""
    started = time.monotonic()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    request = _request(target, headers, body)
    try:
        # A little after the body's deadline, so a late body cuts the body, not the answer.
        async with asyncio.timeout_at(deadline + 0.05):
            answer = await _exchange(target, address, request, pool, deadline)
    except TimeoutError:
        return Outcome(None, _ms(started), f"no answer within {timeout:g}s")
    except asyncio.LimitOverrunError:
        return Outcome(None, _ms(started), f"answer headers over {HEAD_LIMIT} bytes")
    except (OSError, ValueError, asyncio.IncompleteReadError, ssl.SSLError) as error:
        reason = " ".join(str(error).split()) or type(error).__name__
        return Outcome(None, _ms(started), f"{type(error).__name__}: {reason}"[:500])
    text = answer.body.decode("utf-8", "replace")
    problem = None if 200 <= answer.status < 300 else f"HTTP {answer.status}"
    return Outcome(answer.status, _ms(started), problem, text)


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
