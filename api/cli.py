"""The ``session-ledger`` command line."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
import time
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Annotated

import typer
import uvicorn
from pydantic import ValidationError
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from api.cli_webhooks import webhook_child, webhooks_app
from api.projection_process import projection_process
from api.serving import run_workers
from application.errors import StoreUnavailable
from domain.errors import SessionLedgerError
from domain.ids import parse_id
from infrastructure.allocator import limit_malloc_arenas
from infrastructure.container import Services, build_services
from infrastructure.directory_file import DirectoryFileError, parse_directory
from infrastructure.settings import Settings

app = typer.Typer(
    help="Event-sourced session service for multi-account sign-in.", no_args_is_help=True
)
directory_app = typer.Typer(help="Load and inspect the user directory.", no_args_is_help=True)
app.add_typer(directory_app, name="directory")
projections_app = typer.Typer(help="Run, inspect and rebuild projections.", no_args_is_help=True)
app.add_typer(projections_app, name="projections")
keys_app = typer.Typer(help="Manage the keys that sign session tokens.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
audit_app = typer.Typer(help="Replay, verify and export the history.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")
app.add_typer(webhooks_app, name="webhooks")

err = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)


def _fail(message: str) -> typer.Exit:
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
        raise _fail(f"invalid setting {problems}") from None


def _services(settings: Settings) -> Services:
    try:
        return build_services(settings)
    except StoreUnavailable as error:
        raise _fail(str(error)) from None


def demo_directory_text() -> str:
    """The demo directory bundled with the package."""
    return resources.files("infrastructure").joinpath("demo/demo-directory.json").read_text()


def _load(services: Services, text: str, source: str) -> None:
    try:
        report = services.directory_loader.load(parse_directory(text))
    except DirectoryFileError as error:
        raise _fail(f"{source}: {error}") from None
    out.print(f"Loaded {source}: {report}", markup=False, highlight=False)


@directory_app.command("load")
def directory_load(path: Annotated[Path, typer.Argument(help="Directory JSON file")]) -> None:
    """Load users, organizations, workspaces, roles and memberships from PATH (idempotent)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise _fail(f"cannot read {path}: {error}") from None
    services = _services(load_settings())
    try:
        _load(services, text, str(path))
    finally:
        services.close()


def _session_arg(raw: str) -> int:
    session_id = parse_id(raw)
    if session_id is None:
        raise _fail(f"not a session id: {raw!r}")
    return session_id


def _time_arg(raw: str) -> datetime:
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise _fail(f"not an RFC 3339 time: {raw!r}") from None
    if moment.tzinfo is None:
        raise _fail(f"the time needs a zone, e.g. {raw}Z")
    return moment


@audit_app.command("history")
def audit_history(
    session_id: Annotated[str, typer.Argument(help="The session's id")],
    as_json: Annotated[bool, typer.Option("--json", help="JSON Lines instead of a table")] = False,
) -> None:
    """Every event of a session, in order, with the request context of each."""
    services = _services(load_settings())
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
        raise _fail(error.message) from None
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
        raise _fail("give exactly one of --version and --at")
    services = _services(load_settings())
    try:
        moment = _time_arg(at) if at is not None else None
        document, found = services.audit.state(_session_arg(session_id), version, moment)
        payload = {"version": found, "session": document.model_dump(mode="json")}
        out.print(json.dumps(payload, indent=2), markup=False, highlight=False)
    except SessionLedgerError as error:
        raise _fail(error.message) from None
    finally:
        services.close()


@audit_app.command("export")
def audit_export(
    since: Annotated[str | None, typer.Option(help="Only events from this RFC 3339 time")] = None,
    output: Annotated[Path | None, typer.Option(help="File to write (default: stdout)")] = None,
) -> None:
    """Every event as JSON Lines (fields in docs/audit.md), streamed, with a progress bar."""
    services = _services(load_settings())
    try:
        moment = _time_arg(since) if since else None
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
    services = _services(load_settings())
    try:
        with path.open(encoding="utf-8") as lines:
            count = services.audit.import_lines(lines)
        report = services.audit.verify()
        if not report.ok:
            raise _fail(f"imported {count} events, but verification FAILED: {report.problem}")
        for projector in services.projectors:
            projector.catch_up()
        out.print(f"imported {count} events; chain head {report.head_hash}", markup=False)
    except (OSError, ValueError, KeyError) as error:
        raise _fail(f"cannot import {path}: {error}") from None
    except SessionLedgerError as error:
        raise _fail(error.message) from None
    finally:
        services.close()


@audit_app.command("verify")
def audit_verify(
    head: Annotated[
        str | None, typer.Option(help="A chain head kept earlier, to prove it is unchanged")
    ] = None,
) -> None:
    """Check every event against its seal; name the first broken link; print the chain head."""
    services = _services(load_settings())
    try:
        report = services.audit.verify(head)
    finally:
        services.close()
    if not report.ok:
        raise _fail(f"audit verification FAILED: {report.problem}")
    out.print(
        f"ok: {report.events_checked} events and {report.snapshots_checked} snapshots verified; "
        f"chain head position {report.head_position} hash {report.head_hash}",
        markup=False,
    )


@keys_app.command("rotate")
def keys_rotate() -> None:
    """Sign session tokens with a new key; old public keys stay published until tokens expire."""
    services = _services(load_settings())
    try:
        kid = services.keys.rotate()
        out.print(f"new signing key {kid}", markup=False)
    finally:
        services.close()


@projections_app.command("status")
def projections_status() -> None:
    """Each projection's generation, position, the head of the event log, and the lag."""
    services = _services(load_settings())
    try:
        table = Table("projection", "generation", "position", "head", "lag", "rebuilding")
        for projector in services.projectors:
            s = projector.status()
            table.add_row(
                s.name,
                str(s.generation),
                str(s.position),
                str(s.head),
                str(s.lag),
                "yes" if s.rebuilding else "no",
            )
        out.print(table)
    finally:
        services.close()


@projections_app.command("run")
def projections_run() -> None:
    """Keep every projection caught up, in the foreground, until interrupted."""
    services = _services(load_settings())
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    services.worker.start()
    err.print("projection worker running; Ctrl-C to stop", markup=False)
    try:
        # Signal handlers run only in the main thread, and only between its bytecodes: wake
        # up now and then, or a SIGTERM delivered while blocked here would wait forever.
        while not stop.wait(0.5):
            pass
    finally:
        services.close()


@projections_app.command("rebuild")
def projections_rebuild(
    name: Annotated[str | None, typer.Argument(help="Projection to rebuild")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Rebuild every projection")] = False,
) -> None:
    """Rebuild from the first event into fresh tables, swapped in only when complete."""
    services = _services(load_settings())
    try:
        names = [p.name for p in services.projectors]
        if all_ == (name is not None):
            raise _fail(f"name one projection ({', '.join(names)}) or pass --all")
        if name is not None and name not in names:
            raise _fail(f"no projection called {name!r}; there are: {', '.join(names)}")
        chosen = services.projectors if all_ else [services.projector(str(name))]
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            console=err,
        ) as progress:
            for projector in chosen:
                task = progress.add_task(projector.name, total=None, rate="")
                started = time.monotonic()

                def report(done: int, head: int, task: TaskID = task, t0: float = started) -> None:
                    rate = done / max(time.monotonic() - t0, 1e-9)
                    progress.update(
                        task, completed=done, total=max(head, done), rate=f"{rate:,.0f} ev/s"
                    )

                position = projector.rebuild(report)
                progress.update(task, completed=position, total=max(position, 1))
        out.print(f"rebuilt {', '.join(p.name for p in chosen)}", markup=False)
    finally:
        services.close()


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    demo: Annotated[
        bool, typer.Option("--demo", help="Load the bundled demo directory first")
    ] = False,
    workers: Annotated[int, typer.Option(help="Worker processes", min=1, max=64)] = 1,
) -> None:
    """Run the HTTP API with uvicorn (in several processes with --workers)."""
    limit_malloc_arenas()  # before any thread starts; children inherit it
    settings = load_settings()
    if workers > 1 and settings.database_url.startswith("memory://"):
        raise _fail("--workers needs a shared store: memory:// lives inside one process")
    services = _services(settings)
    if demo:
        _load(services, demo_directory_text(), "demo directory")
    from api.app import create_app
    from api.logs import log_config
    from api.rejections import EnvelopeRejections

    # The projection worker runs in a process of its own (api/projection_process.py), except
    # for memory://, which only the serving process can see; webhooks, when configured, are
    # delivered from another (api/cli_webhooks.py).
    separate = settings.run_projections and not settings.database_url.startswith("memory://")
    child = webhook_child(settings)
    with projection_process() if separate else contextlib.nullcontext():
        if workers > 1:
            # Each worker builds its own services from the same settings; nothing they cache
            # can go stale (aggregates fast-forward from the store, reads hit the read model).
            services.close()
            if separate:
                os.environ["SESSION_LEDGER_RUN_PROJECTIONS"] = "false"  # read by each worker
            try:
                run_workers("api.app:create_app", host, port, workers)
            finally:
                child.stop()
            return
        app_ = create_app(settings, services, run_worker=settings.run_projections and not separate)
        try:
            uvicorn.run(
                app_, host=host, port=port, log_level="info", log_config=log_config(),
                http=EnvelopeRejections,
            )  # fmt: skip
        finally:
            child.stop()
            services.close()


def main() -> None:
    """Console script entry point."""
    app()


if __name__ == "__main__":
    main()
