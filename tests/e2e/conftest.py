"""Fixtures of the HTTP tests: the real app over each durable store (SQLite, PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest

from tests.e2e.harness import Browser, Stack, open_stack

BuildStack = Callable[..., Stack]


@pytest.fixture
def build_stack(durable_database_url: str) -> Iterator[BuildStack]:
    """Build the stack on each durable store, with settings (e.g. ``max_sign_ins=2``)."""
    with ExitStack() as exits:

        def build(**settings: Any) -> Stack:
            return exits.enter_context(open_stack(durable_database_url, **settings))

        yield build


@pytest.fixture
def stack(build_stack: BuildStack) -> Stack:
    """The stack with default settings."""
    return build_stack()


@pytest.fixture
def browser(stack: Stack) -> Browser:
    """The stack's first browser."""
    return stack.browser
