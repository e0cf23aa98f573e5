"""Requests uvicorn refuses before the app sees them answer in the envelope, with an id.

uvicorn answers a request it cannot parse (bad request line, malformed or oversized headers,
invalid characters) itself, with a plain-text 400 and no ``X-Request-Id``. Its HTTP protocol
class has one method for that answer, ``send_400_response``; this subclass of the protocol
uvicorn would choose writes the contract's envelope there instead. What stays uvicorn's own:
its warning line for such a request carries no request id (it is logged before the answer,
outside any request), and a ``limit_concurrency`` 503 (a setting we never turn on) is still
its plain text.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from uvicorn.protocols.http.auto import AutoHTTPProtocol

_BASE: Any = AutoHTTPProtocol  # h11 or httptools, whichever uvicorn would use


class EnvelopeRejections(_BASE):  # type: ignore[misc]
    """uvicorn's HTTP protocol, whose own 400 answers are enveloped and carry an id."""

    def send_400_response(self, msg: str) -> None:
        """Write a 400 ``INVALID_REQUEST`` envelope and close, as uvicorn's own answer does."""
        message = f"The request is malformed: {msg.rstrip('.')}."
        body = json.dumps(
            {"status": 400, "message": message, "data": None, "session": None,
             "errors": [{"code": "INVALID_REQUEST", "message": message}]}
        ).encode()  # fmt: skip
        lines = [b"HTTP/1.1 400 Bad Request\r\n"]
        for name, value in self.server_state.default_headers:
            lines.extend([name, b": ", value, b"\r\n"])
        lines.extend(
            [
                b"content-type: application/json\r\n",
                b"content-length: " + str(len(body)).encode("ascii") + b"\r\n",
                b"cache-control: no-store\r\n",
                b"x-request-id: " + uuid.uuid4().hex.encode("ascii") + b"\r\n",
                b"connection: close\r\n",
                b"\r\n",
                body,
            ]
        )
        self.transport.write(b"".join(lines))
        self.transport.close()
