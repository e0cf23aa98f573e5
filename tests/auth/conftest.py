"""Fixtures of the sign-in and sign-up tests: a real SMTP server and the app that mails to it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest

from tests.auth.mailbox import Mailbox, SmtpServer, smtp_server
from tests.e2e.harness import Stack, open_stack

BuildStack = Callable[..., Stack]


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    """An SMTP server on a free port of 127.0.0.1, collecting every message."""
    with smtp_server() as server:
        yield server


@pytest.fixture
def mailbox(smtp: SmtpServer) -> Mailbox:
    """What the SMTP server received."""
    return smtp.mailbox


@pytest.fixture
def build_stack(durable_database_url: str, smtp: SmtpServer) -> Iterator[BuildStack]:
    """Build the stack on each durable store, mailing to the test SMTP server, with settings."""
    with ExitStack() as exits:

        def build(**settings: Any) -> Stack:
            chosen = {**smtp.settings(), **settings}
            return exits.enter_context(open_stack(durable_database_url, **chosen))

        yield build


@pytest.fixture
def stack(build_stack: BuildStack) -> Stack:
    """The stack with default settings."""
    return build_stack()
