"""What every ``session-ledger`` command shares: its consoles, one-line failures, settings
and services."""

from __future__ import annotations

import contextlib
import ctypes
import signal
import time
from datetime import datetime
from importlib import resources

import typer
from pydantic import ValidationError
from rich.console import Console

from application.errors import StoreUnavailable
from infrastructure.container import Services, build_services
from infrastructure.settings import Settings

err = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)


def fail(message: str) -> typer.Exit:
    """Print ``message`` as the command's one line of failure; the exit to raise."""
    err.print(f"session-ledger: {message}", markup=False, highlight=False)
    return typer.Exit(1)


def load_settings() -> Settings:
    """Settings from the environment, or one clear line naming the bad variable."""
    try:
        return Settings()
    except ValidationError as error:
        problems = "; ".join(
            f"SESSION_LEDGER_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}"
            for e in error.errors()
        )
        raise fail(f"invalid setting {problems}") from None


def open_services(settings: Settings) -> Services:
    """The services the settings describe, or one clear line when the store is away."""
    try:
        return build_services(settings)
    except StoreUnavailable as error:
        raise fail(str(error)) from None


def demo_directory_text() -> str:
    """The demo directory bundled with the package."""
    return resources.files("infrastructure").joinpath("demo/demo-directory.json").read_text()


def time_arg(raw: str) -> datetime:
    """An RFC 3339 time with a zone, or one clear line."""
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise fail(f"not an RFC 3339 time: {raw!r}") from None
    if moment.tzinfo is None:
        raise fail(f"the time needs a zone, e.g. {raw}Z")
    return moment


def die_with_parent() -> None:
    """In a child, before exec: receive SIGTERM when the parent goes away (PR_SET_PDEATHSIG)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


def stop_signals() -> list[int]:
    """Have SIGINT and SIGTERM recorded in the returned list (then :func:`wait_for_signal`).

    The handler only appends: one that took a lock (``threading.Event.set``) deadlocked when
    the signal came while the main thread held that lock inside ``Event.wait``, and the
    child of a stopped ``serve`` lived on."""
    received: list[int] = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda number, _: received.append(number))
    return received


def wait_for_signal(received: list[int]) -> None:
    """Return once :func:`stop_signals` has recorded a signal. Handlers run in the main
    thread between its bytecodes, and a signal cuts the sleep short, so this is prompt."""
    while not received:
        time.sleep(0.5)
