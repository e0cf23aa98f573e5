"""``session-ledger webhooks …``: endpoints, secrets, replay, deliveries, and the worker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from rich.table import Table

from api.cli_common import (
    die_with_parent,
    err,
    fail,
    load_settings,
    open_services,
    out,
    stop_signals,
    time_arg,
    wait_for_signal,
)
from domain.errors import SessionLedgerError
from domain.ids import parse_id
from infrastructure.settings import Settings
from infrastructure.webhooks.service import WebhookService

webhooks_app = typer.Typer(
    help="Webhook endpoints, secrets, replay and delivery (docs/webhooks.md).", no_args_is_help=True
)


EventOption = Annotated[
    list[str] | None, typer.Option("--event", help="An event type (repeat); default: all")
]


@contextmanager
def _webhooks() -> Iterator[WebhookService]:
    services = open_services(load_settings())
    try:
        yield services.webhooks
    except SessionLedgerError as error:
        raise fail(error.message) from None
    finally:
        services.close()


def _id(raw: str) -> int:
    parsed = parse_id(raw)
    if parsed is None:
        raise fail(f"not an endpoint id: {raw!r}")
    return parsed


def _print(data: Any) -> None:
    out.print(json.dumps(data, indent=2), markup=False, highlight=False)


def _with(action: Callable[[WebhookService], Any]) -> None:
    with _webhooks() as webhooks:
        _print(action(webhooks))


@webhooks_app.command("catalogue")
def catalogue() -> None:
    """Every event type with its description and an example body (JSON)."""
    _with(lambda w: w.catalogue())


@webhooks_app.command("add")
def add(
    url: Annotated[str, typer.Argument(help="http(s) URL of the receiver")],
    event: EventOption = None,
    disabled: Annotated[bool, typer.Option("--disabled", help="Create it disabled")] = False,
) -> None:
    """Add an endpoint; prints its signing secret, shown this once."""
    with _webhooks() as webhooks:
        endpoint, secret = webhooks.create_endpoint(url, event, enabled=not disabled)
        _print({"endpoint": endpoint.as_json()})
        out.print(f"secret (shown once): {secret}", markup=False, highlight=False)


@webhooks_app.command("list")
def list_() -> None:
    """Every endpoint, its state and counters."""
    with _webhooks() as webhooks:
        table = Table("url", "enabled", "events", "delivered", "failed attempts", "disabled")
        table.add_column("id", no_wrap=True)  # ids are copied from here: never wrapped
        for e in webhooks.endpoints():
            table.add_row(
                e.url, "yes" if e.enabled else "no", str(len(e.event_types)),
                str(e.delivered_total), str(e.failures_total),
                f"{e.disabled_at} {e.disabled_reason}" if e.disabled_at else "", str(e.id),
            )  # fmt: skip
        out.print(table)


@webhooks_app.command("show")
def show(endpoint_id: str) -> None:
    """One endpoint (JSON)."""
    _with(lambda w: w.endpoint(_id(endpoint_id)).as_json())


@webhooks_app.command("update")
def update(
    endpoint_id: str,
    url: Annotated[str | None, typer.Option(help="New URL")] = None,
    event: EventOption = None,
) -> None:
    """Change an endpoint's URL or event types."""
    _with(lambda w: w.update_endpoint(_id(endpoint_id), url, event).as_json())


@webhooks_app.command("enable")
def enable(endpoint_id: str) -> None:
    """Enable an endpoint (also after an automatic disable). Replay what it missed with
    ``webhooks replay ID --from <disabled_at>``."""
    _with(lambda w: w.update_endpoint(_id(endpoint_id), enabled=True).as_json())


@webhooks_app.command("disable")
def disable(endpoint_id: str) -> None:
    """Stop delivering to an endpoint."""
    _with(lambda w: w.update_endpoint(_id(endpoint_id), enabled=False).as_json())


@webhooks_app.command("rotate-secret")
def rotate_secret(
    endpoint_id: str,
    overlap: Annotated[float, typer.Option(help="Seconds the old secret still signs")] = 86400,
) -> None:
    """A new signing secret, shown this once; both sign during the overlap."""
    with _webhooks() as webhooks:
        endpoint, secret = webhooks.rotate_secret(_id(endpoint_id), overlap)
        _print({"endpoint": endpoint.as_json()})
        out.print(f"secret (shown once): {secret}", markup=False, highlight=False)


@webhooks_app.command("replay")
def replay(
    endpoint_id: str,
    since_position: Annotated[int | None, typer.Option(help="Events after this position")] = None,
    from_: Annotated[str | None, typer.Option("--from", help="RFC 3339 start")] = None,
    to: Annotated[str | None, typer.Option(help="RFC 3339 end (exclusive)")] = None,
) -> None:
    """Deliver a window of history again (or back-fill it), with the same webhook ids."""
    start = time_arg(from_) if from_ else None
    end = time_arg(to) if to else None
    _with(lambda w: {"queued": w.replay(_id(endpoint_id), since_position, start, end)})


@webhooks_app.command("deliveries")
def deliveries(
    endpoint_id: str,
    status: Annotated[str | None, typer.Option(help="pending, delivered or failed")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
) -> None:
    """An endpoint's deliveries, newest first (JSON)."""
    _with(lambda w: w.deliveries(_id(endpoint_id), status, limit))


@webhooks_app.command("attempts")
def attempts(endpoint_id: str, message_id: str) -> None:
    """Every attempt of one message to one endpoint: status, time, latency, answer (JSON)."""
    _with(lambda w: w.attempts(_id(endpoint_id), message_id))


@webhooks_app.command("status")
def status() -> None:
    """Follower position and lag, each endpoint's backlog and state (JSON)."""
    _with(lambda w: w.status())


class WebhookChild:
    """The delivery worker as a child process of ``serve`` (or nothing, when not wanted).

    A process of its own has its own GIL: in a thread of a busy API process, the delivery
    loop waits for the interpreter at every step and falls behind (bench/webhooks.py). It
    dies with its parent (PR_SET_PDEATHSIG), and the lease keeps it to one per store.
    """

    def __init__(self, process: subprocess.Popen[bytes] | None) -> None:
        self.process = process

    def stop(self) -> None:
        """Stop the child, if there is one."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def webhook_child(settings: Settings) -> WebhookChild:
    """Start ``session-ledger webhooks run`` beside ``serve`` when webhooks are configured,
    wanted inside ``serve`` and meant to run in a process (the default)."""
    wanted = settings.run_webhooks and settings.webhook_worker == "process"
    if not (wanted and settings.webhook_key):
        return WebhookChild(None)
    command = [sys.executable, "-c", "from api.cli import main; main()", "webhooks", "run"]
    process = subprocess.Popen(  # noqa: S603 - our own command, the same settings (environment)
        command, env=dict(os.environ), preexec_fn=die_with_parent
    )
    return WebhookChild(process)


@webhooks_app.command("run")
def run() -> None:
    """Deliver webhooks in the foreground until interrupted (when `serve` runs with
    SESSION_LEDGER_RUN_WEBHOOKS=false, or on another machine)."""
    signals = stop_signals()
    services = open_services(load_settings())
    try:
        services.webhooks.start()
    except SessionLedgerError as error:
        services.close()
        raise fail(error.message) from None
    err.print("webhook worker running; Ctrl-C to stop", markup=False)
    try:
        wait_for_signal(signals)
    finally:
        services.close()
