"""Email delivery of one-time codes: a queue drained by a sender thread.

Requests only enqueue, so an answer takes the same time whether a code was sent or (for an
unknown email) not. With SMTP configured, mail goes over SMTP (STARTTLS and login when set);
without it, development mode writes the code to the log with a loud warning.
"""

from __future__ import annotations

import logging
import queue
import smtplib
import threading
from contextvars import Context, copy_context
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Protocol

logger = logging.getLogger("session_ledger.mail")


@dataclass(frozen=True)
class SmtpSettings:
    """Where and how to send mail."""

    host: str
    port: int = 587
    username: str | None = None
    password: str | None = None
    sender: str = "session-ledger@localhost"
    starttls: bool = True
    timeout: float = 10.0


class Transport(Protocol):
    """Delivers one message."""

    def deliver(self, message: EmailMessage) -> None:
        """Send ``message`` or raise."""


class SmtpTransport:
    """Delivers over SMTP."""

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings

    def deliver(self, message: EmailMessage) -> None:
        """One connection per message: simple, and codes are rare."""
        s = self.settings
        with smtplib.SMTP(s.host, s.port, timeout=s.timeout) as smtp:
            if s.starttls:
                smtp.starttls()
            if s.username:
                smtp.login(s.username, s.password or "")
            smtp.send_message(message)


class LogTransport:
    """Development mode: no SMTP server, so the code goes to the log."""

    def deliver(self, message: EmailMessage) -> None:
        """Log the message body (which holds the code) with a warning."""
        logger.warning(
            "DEVELOPMENT MODE, no SMTP configured (SESSION_LEDGER_SMTP_HOST): "
            "email to %s not sent. %s",
            message["To"],
            str(message.get_content()).strip(),
        )


class Outbox:
    """Queues codes and sends them from a background thread."""

    def __init__(self, transport: Transport, sender: str) -> None:
        self.transport = transport
        self.sender = sender
        # Each message travels with the context of the request that queued it, so what its
        # delivery logs carries that request's id.
        self._queue: queue.Queue[tuple[EmailMessage, Context, bool] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._drain, name="mail-outbox", daemon=True)
        self._thread.start()

    def send_code(
        self, to: str, code: str, purpose: str, valid_minutes: int, deliver: bool = True
    ) -> None:
        """Queue the code's email; with ``deliver`` false it is built, queued and flattened
        like any other, then discarded (an unknown email's code: the same work, no mail)."""
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = to
        message["Subject"] = f"Your {purpose} code"
        message.set_content(
            f"Your {purpose} code is {code}.\n\n"
            f"It expires in {valid_minutes} minutes. "
            "If you did not ask for it, ignore this email.\n"
        )
        self._queue.put((message, copy_context(), deliver))

    def _drain(self) -> None:
        while (item := self._queue.get()) is not None:
            message, context, deliver = item
            context.run(self._deliver, message, deliver)

    def _deliver(self, message: EmailMessage, deliver: bool) -> None:
        try:
            if deliver:
                self.transport.deliver(message)
            else:
                message.as_bytes()  # what every transport does first; then nothing
        except Exception as error:  # logged without the code; the user can ask again
            logger.error("could not send email to %s: %s", message["To"], type(error).__name__)

    def close(self, timeout: float = 5.0) -> None:
        """Send what is queued, then stop."""
        self._queue.put(None)
        self._thread.join(timeout)
