"""The webhook HTTP client against raw TCP servers: kept-alive connections, bounded answers.

- answers framed by length or by chunks leave the connection for the next attempt: five
  posts, one connection;
- an answer too long to read whole is cut at BODY_LIMIT and its connection is not reused;
- a receiver that closes each connection after answering (without saying so) still gets
  every request, each on a connection of its own;
- a receiver that sends its head and then stalls: the status decides, the body is cut;
- connections idle longer than IDLE_SECONDS are closed by the next round's prune.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from infrastructure.webhooks.addresses import parse_url
from infrastructure.webhooks.http import BODY_LIMIT, IDLE_SECONDS, Connections, Outcome, post

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[bool]]


async def _read_request(reader: asyncio.StreamReader) -> bool:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return False
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))  # fmt: skip
    await reader.readexactly(length)
    return True


async def _serve(answer: bytes, posts: int, close_after: bool = False) -> tuple[list[Outcome], int]:
    """Run a server answering ``answer`` to each request; ``posts`` posts one after another
    through one pool; the outcomes and how many connections the server accepted."""
    connections = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        while await _read_request(reader):
            writer.write(answer)
            await writer.drain()
            if close_after:
                break
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    target = parse_url(f"http://127.0.0.1:{port}/hooks", allow_private=True)
    pool = Connections()
    outcomes = []
    try:
        for n in range(posts):
            headers = {"webhook-id": f"msg_{n}"}
            outcomes.append(await post(target, "127.0.0.1", headers, b"{}", 5.0, pool))
            await asyncio.sleep(0.01)
    finally:
        pool.close()
        server.close()
        await server.wait_closed()
    return outcomes, connections


def test_answers_framed_by_length_or_chunks_keep_one_connection() -> None:
    sized = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    outcomes, connections = asyncio.run(_serve(sized, 5))
    assert [(o.status, o.response) for o in outcomes] == [(200, "ok")] * 5
    assert connections == 1
    chunked = (b"HTTP/1.1 202 Accepted\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"3\r\nabc\r\n2;x=y\r\nde\r\n0\r\nTrailer: t\r\n\r\n")  # fmt: skip
    outcomes, connections = asyncio.run(_serve(chunked, 5))
    assert [(o.status, o.response) for o in outcomes] == [(202, "abcde")] * 5
    assert connections == 1


def test_idle_connections_are_closed_after_a_while() -> None:
    async def run() -> tuple[int, int]:
        server = await asyncio.start_server(_keep_answering, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        target = parse_url(f"http://127.0.0.1:{port}/", allow_private=True)
        pool = Connections()
        try:
            await post(target, "127.0.0.1", {}, b"{}", 5.0, pool)
            pool.prune()
            kept = pool.idle()
            await asyncio.sleep(IDLE_SECONDS + 0.2)
            pool.prune()
            return kept, pool.idle()
        finally:
            pool.close()
            server.close()

    assert asyncio.run(run()) == (1, 0)


async def _keep_answering(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while await _read_request(reader):
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
    writer.close()


def test_a_long_answer_is_cut_and_its_connection_not_reused() -> None:
    long = BODY_LIMIT * 3
    answer = b"HTTP/1.1 500 Oops\r\nContent-Length: %d\r\n\r\n" % long + b"x" * long
    outcomes, connections = asyncio.run(_serve(answer, 3))
    assert [(o.status, len(o.response or "")) for o in outcomes] == [(500, BODY_LIMIT)] * 3
    assert all(not o.ok and o.error == "HTTP 500" for o in outcomes)
    assert connections == 3


@pytest.mark.parametrize("announced", [False, True])
def test_a_receiver_closing_after_each_answer_gets_every_request(announced: bool) -> None:
    close = b"Connection: close\r\n" if announced else b""
    answer = b"HTTP/1.1 200 OK\r\n" + close + b"Content-Length: 2\r\n\r\nok"
    outcomes, connections = asyncio.run(_serve(answer, 4, close_after=True))
    assert [o.status for o in outcomes] == [200] * 4
    assert connections == 4


def test_a_stalled_body_cuts_the_body_not_the_answer() -> None:
    async def run() -> Outcome:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await _read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
            await writer.drain()
            await asyncio.sleep(3)
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        target = parse_url(f"http://127.0.0.1:{port}/", allow_private=True)
        pool = Connections()
        try:
            return await post(target, "127.0.0.1", {}, b"{}", 0.5, pool)
        finally:
            assert pool.take(("http", "127.0.0.1", port, "127.0.0.1")) is None  # not kept
            server.close()

    outcome = asyncio.run(run())
    assert (outcome.status, outcome.response) == (200, "")
