"""Worker processes share a TCP listener whose accepted sockets asyncio puts in TCP_NODELAY."""

from __future__ import annotations

import asyncio
import socket

from api.serving import TcpConfig


def test_the_listener_is_tcp_so_accepted_connections_get_nodelay() -> None:
    config = TcpConfig("api.app:create_app", factory=True, host="127.0.0.1", port=0, workers=2)
    listener = config.bind_socket()
    listener.listen()
    try:
        # asyncio only sets TCP_NODELAY on sockets whose protocol is IPPROTO_TCP, and an
        # accepted socket carries its listener's protocol.
        assert listener.proto == socket.IPPROTO_TCP
        with socket.create_connection(listener.getsockname()) as client:
            accepted, _ = listener.accept()
            with accepted:
                assert accepted.proto == socket.IPPROTO_TCP

                async def served_nodelay() -> int:
                    loop = asyncio.get_running_loop()
                    transport, _ = await loop.connect_accepted_socket(
                        asyncio.Protocol, accepted.dup()
                    )
                    raw = transport.get_extra_info("socket")
                    value = int(raw.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
                    transport.close()
                    return value

                assert asyncio.run(served_nodelay()) == 1
            client.close()
    finally:
        listener.close()


def test_a_plain_listener_would_not_get_nodelay() -> None:
    # The reason for TcpConfig: a listener made with protocol 0 passes 0 on, and asyncio
    # then leaves Nagle's algorithm on (a 40 ms stall per keep-alive response).
    plain = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    assert plain.proto == 0
    plain.close()
