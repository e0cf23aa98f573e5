"""A real webhook receiver for the tests: uvicorn on a local port, in a thread.

It verifies every request with ``standardwebhooks`` against each secret it is told about
(so a test sees which secrets signed a delivery), keeps every request it got and a view
deduplicated by ``webhook-id`` of those it accepted, and can be told to fail, answer late,
or hang.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from standardwebhooks.webhooks import Webhook, WebhookVerificationError


@dataclass
class Received:
    """One request as the receiver saw it."""

    webhook_id: str
    timestamp: str
    signatures: list[str]
    body: bytes
    verified_by: list[int]  # indexes into the receiver's secrets that verify it
    answered: int | None = None

    @property
    def json(self) -> dict[str, Any]:
        """The parsed body."""
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed


@dataclass
class Receiver:
    """State and behaviour of one receiver; change the behaviour at any time."""

    secrets: list[str] = field(default_factory=list)
    status: int = 200
    fail_first: int = 0  # answer 500 to this many requests first
    delay: float = 0.0  # seconds before answering
    hang: bool = False  # never answer
    port: int = 0
    requests: list[Received] = field(default_factory=list)
    accepted: dict[str, Received] = field(default_factory=dict)
    in_flight: int = 0
    most_at_once: int = 0  # the most requests it was answering at one time
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        """Where it listens."""
        return f"http://127.0.0.1:{self.port}/hooks"

    def accepted_ids(self) -> set[str]:
        """Webhook ids answered with a 2xx (the deduplicated view)."""
        with self.lock:
            return set(self.accepted)

    def received_ids(self) -> list[str]:
        """Webhook ids of every request, repeats included."""
        with self.lock:
            return [r.webhook_id for r in self.requests]

    def verify(self, headers: dict[str, str], body: bytes) -> list[int]:
        """Indexes of the secrets whose signature the request carries (standardwebhooks)."""
        found = []
        for index, secret in enumerate(self.secrets):
            try:
                Webhook(secret).verify(body, headers, json_parse=False)
            except WebhookVerificationError:
                continue
            found.append(index)
        return found

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        record = Received(
            webhook_id=headers.get("webhook-id", ""),
            timestamp=headers.get("webhook-timestamp", ""),
            signatures=headers.get("webhook-signature", "").split(" "),
            body=body,
            verified_by=self.verify(headers, body),
        )
        with self.lock:
            self.requests.append(record)
            failing = len(self.requests) <= self.fail_first
            self.in_flight += 1
            self.most_at_once = max(self.most_at_once, self.in_flight)
        try:
            if self.hang:
                await asyncio.sleep(3600)
            if self.delay:
                await asyncio.sleep(self.delay)
        finally:
            with self.lock:
                self.in_flight -= 1
        status = 500 if failing else (self.status if record.verified_by else 401)
        record.answered = status
        if 200 <= status < 300:
            with self.lock:
                self.accepted.setdefault(record.webhook_id, record)
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"receiver says %d" % status})


@contextmanager
def running(receiver: Receiver, host: str = "127.0.0.1") -> Iterator[Receiver]:
    """Serve ``receiver`` on an ephemeral port until the block ends."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.bind((host, 0))
    receiver.port = int(sock.getsockname()[1])
    config = uvicorn.Config(receiver, log_level="warning", lifespan="off", timeout_keep_alive=1)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: server.run(sockets=[sock]), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        yield receiver
    finally:
        server.should_exit = True
        server.force_exit = True  # hanging requests must not hold the test up
        thread.join(10)
        sock.close()


def wait_for(condition: Callable[[], bool], timeout: float = 30.0, what: str = "") -> None:
    """Poll until ``condition()`` holds; fail (naming ``what``) after ``timeout`` seconds.
    The timeout only bounds a broken run; nothing asserts how long anything took."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        time.sleep(0.02)
