"""A real SMTP server for the tests: aiosmtpd on 127.0.0.1, collecting what it receives.

The service's outbox sends from a background thread, so readers wait (with a timeout) for
mail to arrive. :meth:`Mailbox.settle` proves the outbox has sent everything queued so far:
it queues a marker message and waits for it, and the outbox sends in order.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller

from infrastructure.container import Services
from tests.serving import free_port

CODE = re.compile(r"(?<![0-9])[0-9]{6}(?![0-9])")
MARKER = "outbox-marker@mail.test"
WAIT_SECONDS = 10.0


@dataclass(frozen=True)
class Mail:
    """One message as the SMTP server received it."""

    recipients: tuple[str, ...]
    to: str
    subject: str
    body: str

    @property
    def code(self) -> str:
        """The one 6-digit code in the body."""
        found = CODE.findall(self.body)
        assert len(found) == 1, f"expected one 6-digit code in {self.body!r}"
        code: str = found[0]
        return code


class Mailbox:
    """The SMTP handler: keeps every message, wakes up whoever waits for one."""

    def __init__(self) -> None:
        self._mail: list[Mail] = []
        self._read: dict[str, int] = {}
        self._changed = threading.Condition()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        """aiosmtpd's hook: one message received."""
        parsed = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        body = parsed.get_body(("plain",))
        mail = Mail(
            recipients=tuple(str(r).lower() for r in envelope.rcpt_tos),
            to=str(parsed["To"]).lower(),
            subject=str(parsed["Subject"]),
            body=str(body.get_content()) if body is not None else "",
        )
        with self._changed:
            self._mail.append(mail)
            self._changed.notify_all()
        return "250 Message accepted for delivery"

    def received(self) -> list[Mail]:
        """Every message so far, markers left out."""
        with self._changed:
            return [m for m in self._mail if MARKER not in m.recipients]

    def to(self, address: str) -> list[Mail]:
        """Every message to ``address`` so far."""
        return [m for m in self.received() if address.lower() in m.recipients]

    def wait_for(self, address: str, count: int, timeout: float = WAIT_SECONDS) -> list[Mail]:
        """The first ``count`` messages to ``address``, waiting for them if need be."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                mail = [m for m in self._mail if address.lower() in m.recipients]
                if len(mail) >= count:
                    return mail[:count]
                left = deadline - time.monotonic()
                assert left > 0, f"no mail #{count} to {address} within {timeout}s: {self._mail}"
                self._changed.wait(left)

    def next_mail(self, address: str) -> Mail:
        """The next message to ``address`` that the test has not read yet (waits for it)."""
        key = address.lower()
        index = self._read.get(key, 0)
        mail = self.wait_for(key, index + 1)[index]
        self._read[key] = index + 1
        return mail

    def next_code(self, address: str) -> str:
        """The code in the next unread message to ``address``."""
        return self.next_mail(address).code

    def settle(self, services: Services) -> None:
        """Return once the outbox has sent everything queued before this call."""
        with self._changed:
            markers = len([m for m in self._mail if MARKER in m.recipients])
        services.outbox.send_code(MARKER, "000000", "marker", 1)
        self.wait_for(MARKER, markers + 1)


@dataclass(frozen=True)
class SmtpServer:
    """Where the test SMTP server listens, and what it received."""

    host: str
    port: int
    mailbox: Mailbox

    def settings(self) -> dict[str, object]:
        """The service settings that send mail here (plain SMTP, no STARTTLS)."""
        return {"smtp_host": self.host, "smtp_port": self.port, "smtp_starttls": False}


@contextmanager
def smtp_server() -> Iterator[SmtpServer]:
    """An SMTP server on a free local port, for as long as the block runs."""
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield SmtpServer("127.0.0.1", port, mailbox)
    finally:
        controller.stop()
