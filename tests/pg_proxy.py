"""A TCP proxy in front of PostgreSQL that can lose the answer to a commit.

The fault it makes is the one a failover or a network cut makes at the worst moment: the
server has committed an append, and the client never hears so. Armed, the proxy watches the
client's protocol messages; the next time a statement whose text names ``doom_statement``
is bound and executed, it lets the server run it to the end (until ReadyForQuery, sent after
the implicit transaction commits), swallows the whole answer and closes both sides. The
client sees its connection drop, not knowing whether anything was written.

Plain-text protocol only: clients must connect with ``sslmode=disable`` and
``gssencmode=disable`` (set ``PGSSLMODE``/``PGGSSENCMODE``).
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress


class _Link:
    """One client connection and its server connection, pumped by two threads."""

    def __init__(self, proxy: PgProxy, client: socket.socket, server: socket.socket) -> None:
        self.proxy = proxy
        self.client = client
        self.server = server
        self.statements: dict[bytes, bytes] = {}  # prepared statement name -> text
        self.doomed = False

    def close(self) -> None:
        for end in (self.client, self.server):
            with suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
            end.close()

    def pump_client(self) -> None:
        """Forward the client's messages, noting each statement's text and each bind."""
        try:
            self._forward_startup()
            while message := _read_typed(self.client):
                kind, body = message
                if kind == b"P":
                    name, rest = body.split(b"\0", 1)
                    self.statements[name] = rest.split(b"\0", 1)[0]
                elif kind == b"B":
                    _portal, statement, _rest = body.split(b"\0", 2)
                    self._maybe_doom(self.statements.get(statement, b""))
                elif kind == b"Q":
                    self._maybe_doom(body)
                self.server.sendall(kind + struct.pack("!I", len(body) + 4) + body)
        except OSError:
            pass
        finally:
            self.close()

    def _forward_startup(self) -> None:
        header = _read_exactly(self.client, 4)
        (length,) = struct.unpack("!I", header)
        self.server.sendall(header + _read_exactly(self.client, length - 4))

    def _maybe_doom(self, text: bytes) -> None:
        with self.proxy.lock:
            if self.proxy.armed and self.proxy.doom_statement in text:
                self.proxy.armed = False
                self.doomed = True

    def pump_server(self) -> None:
        """Forward the server's messages; once doomed, swallow them up to ReadyForQuery."""
        try:
            while message := _read_typed(self.server):
                kind, body = message
                if self.doomed:
                    if kind == b"Z":  # the statement ran and committed; the client never knows
                        with self.proxy.lock:
                            self.proxy.answers_lost += 1
                        return
                    continue
                self.client.sendall(kind + struct.pack("!I", len(body) + 4) + body)
        except OSError:
            pass
        finally:
            self.close()


class PgProxy:
    """Listens on a free port of 127.0.0.1 and forwards to ``upstream``."""

    def __init__(self, upstream: tuple[str, int], doom_statement: bytes) -> None:
        self.upstream = upstream
        self.doom_statement = doom_statement
        self.lock = threading.Lock()
        self.armed = False
        self.answers_lost = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._links: list[_Link] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def arm(self) -> None:
        """Lose the answer to the next execution of the doomed statement."""
        with self.lock:
            self.armed = True

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            link = _Link(self, client, server)
            self._links.append(link)
            threading.Thread(target=link.pump_client, daemon=True).start()
            threading.Thread(target=link.pump_server, daemon=True).start()

    def close(self) -> None:
        self._listener.close()
        for link in self._links:
            link.close()


@contextmanager
def pg_proxy(upstream: tuple[str, int], doom_statement: bytes) -> Iterator[PgProxy]:
    """A running proxy, closed afterwards."""
    proxy = PgProxy(upstream, doom_statement)
    try:
        yield proxy
    finally:
        proxy.close()


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise OSError("closed")
        data += chunk
    return data


def _read_typed(sock: socket.socket) -> tuple[bytes, bytes] | None:
    """One protocol message (type byte, body), or None when the peer closed."""
    try:
        header = _read_exactly(sock, 5)
    except OSError:
        return None
    (length,) = struct.unpack("!I", header[1:])
    return header[:1], _read_exactly(sock, length - 4)
