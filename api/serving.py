"""Running uvicorn with several worker processes, without a 40 ms stall per request.

uvicorn creates its listening socket with protocol 0; sockets it accepts inherit that, and
asyncio only sets TCP_NODELAY on sockets whose protocol is IPPROTO_TCP. With several
workers (where uvicorn shares a socket it created), every keep-alive response after the
first then waits for the peer's delayed ACK (measured: 700 instead of 3,500 no-op req/s).
Creating the listener with IPPROTO_TCP gives accepted sockets TCP_NODELAY again.
"""

from __future__ import annotations

import contextlib
import logging
import socket

import uvicorn
from uvicorn.supervisors import Multiprocess

from api.logs import log_config
from api.rejections import EnvelopeRejections

logger = logging.getLogger("uvicorn.error")


class TcpConfig(uvicorn.Config):
    """uvicorn's configuration, with a TCP listener whose accepted sockets get TCP_NODELAY."""

    def bind_socket(self) -> socket.socket:
        """Bind host:port with protocol IPPROTO_TCP (unix sockets and fds as uvicorn does)."""
        if self.uds is not None or self.fd is not None:
            return super().bind_socket()
        family = socket.AF_INET6 if self.host and ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        sock.set_inheritable(True)
        logger.info("Uvicorn running on http://%s:%d (Press CTRL+C to quit)", self.host, self.port)
        return sock


def run_workers(app: str, host: str, port: int, workers: int) -> None:
    """Serve the app factory ``app`` from ``workers`` processes sharing one listener."""
    config = TcpConfig(
        app, factory=True, host=host, port=port, workers=workers, log_config=log_config(),
        # X-Forwarded-* are judged by our trusted-proxy settings alone (api/context.py):
        # uvicorn's own handling believes them from any local peer.
        http=EnvelopeRejections, proxy_headers=False,
    )  # fmt: skip
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how one stops it
        Multiprocess(config, sockets=[config.bind_socket()]).run()
