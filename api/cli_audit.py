"""``session-ledger audit …``: replay, verify, export and import the history."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress
from rich.table import Table

from api.cli_common import err, fail, load_settings, open_services, out, time_arg
from domain.errors import SessionLedgerError
from domain.ids import parse_id

audit_app = typer.Typer(help="Replay, verify and export the history.", no_args_is_help=True)


def _session_arg(raw: str) -> int:
    session_id = parse_id(raw)
    if session_id is None:
        raise fail(f"not a session id: {raw!r}")
    return session_id


@audit_app.command("history")
def audit_history(
    session_id: Annotated[str, typer.Argument(help="The session's id")],
    as_json: Annotated[bool, typer.Option("--json", help="JSON Lines instead of a table")] = False,
) -> None:
    """Every event of a session, in order, with the request context of each."""
    services = open_services(load_settings())
    try:
        events = services.audit.history(_session_arg(session_id))
        if as_json:
            for event in events:
                out.print(
                    json.dumps(event.as_json()), markup=False, highlight=False, soft_wrap=True
                )
            return
        table = Table("pos", "ver", "time", "type", "data", "from")
        for e in events:
            origin = (e.context or {}).get("client_address") or ""
            data = json.dumps(e.data, separators=(",", ":"))
            table.add_row(str(e.position), str(e.version), e.time, e.type, data, origin)
        out.print(table)
    except SessionLedgerError as error:
        raise fail(error.message) from None
    finally:
        services.close()


@audit_app.command("state")
def audit_state(
    session_id: Annotated[str, typer.Argument(help="The session's id")],
    version: Annotated[int | None, typer.Option(help="The session's version", min=1)] = None,
    at: Annotated[str | None, typer.Option(help="An RFC 3339 time")] = None,
) -> None:
    """The session as it was at a version or a time, in the contract's Session shape."""
    if (version is None) == (at is None):
        raise fail("give exactly one of --version and --at")
    services = open_services(load_settings())
    try:
        moment = time_arg(at) if at is not None else None
        document, found = services.audit.state(_session_arg(session_id), version, moment)
        payload = {"version": found, "session": document.model_dump(mode="json")}
        out.print(json.dumps(payload, indent=2), markup=False, highlight=False)
    except SessionLedgerError as error:
        raise fail(error.message) from None
    finally:
        services.close()


@audit_app.command("export")
def audit_export(
    since: Annotated[str | None, typer.Option(help="Only events from this RFC 3339 time")] = None,
    output: Annotated[Path | None, typer.Option(help="File to write (default: stdout)")] = None,
) -> None:
    """Every event as JSON Lines (fields in docs/audit.md), streamed, with a progress bar."""
    services = open_services(load_settings())
    try:
        moment = time_arg(since) if since else None
        head = services.sessions.recorder.max_notification_id() or 0
        target = output.open("w", encoding="utf-8") if output else sys.stdout
        try:
            with Progress(console=err, disable=output is None) as progress:
                task = progress.add_task("export", total=max(head, 1))
                count = services.audit.export(
                    target, moment, lambda p: progress.update(task, completed=p)
                )
        finally:
            if output:
                target.close()
        err.print(f"exported {count} events", markup=False)
    finally:
        services.close()


@audit_app.command("import")
def audit_import(path: Annotated[Path, typer.Argument(help="A file from `audit export`")]) -> None:
    """Append an export to an empty store; the events are sealed again (same chain head)."""
    services = open_services(load_settings())
    try:
        with path.open(encoding="utf-8") as lines:
            count = services.audit.import_lines(lines)
        report = services.audit.verify()
        if not report.ok:
            raise fail(f"imported {count} events, but verification FAILED: {report.problem}")
        for projector in services.projectors:
            projector.catch_up()
        out.print(f"imported {count} events; chain head {report.head_hash}", markup=False)
    except (OSError, ValueError, KeyError) as error:
        raise fail(f"cannot import {path}: {error}") from None
    except SessionLedgerError as error:
        raise fail(error.message) from None
    finally:
        services.close()


@audit_app.command("verify")
def audit_verify(
    head: Annotated[
        str | None, typer.Option(help="A chain head kept earlier, to prove it is unchanged")
    ] = None,
) -> None:
    """Check every event against its seal; name the first broken link; print the chain head."""
    services = open_services(load_settings())
    try:
        report = services.audit.verify(head)
    finally:
        services.close()
    if not report.ok:
        raise fail(f"audit verification FAILED: {report.problem}")
    out.print(
        f"ok: {report.events_checked} events and {report.snapshots_checked} snapshots verified; "
        f"chain head position {report.head_position} hash {report.head_hash}",
        markup=False,
    )
