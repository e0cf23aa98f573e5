"""The ``session-ledger`` command line."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Annotated

import typer
import uvicorn
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from api.cli_audit import audit_app
from api.cli_common import (
    demo_directory_text,
    err,
    fail,
    load_settings,
    open_services,
    out,
    stop_signals,
    wait_for_signal,
)
from api.cli_webhooks import webhook_child, webhooks_app
from api.heap import settle_heap
from api.projection_process import projection_process
from api.serving import run_workers
from infrastructure.allocator import limit_malloc_arenas
from infrastructure.container import Services
from infrastructure.directory_file import DirectoryFileError, parse_directory

app = typer.Typer(
    help="Event-sourced session service for multi-account sign-in.", no_args_is_help=True
)
directory_app = typer.Typer(help="Load and inspect the user directory.", no_args_is_help=True)
app.add_typer(directory_app, name="directory")
projections_app = typer.Typer(help="Run, inspect and rebuild projections.", no_args_is_help=True)
app.add_typer(projections_app, name="projections")
keys_app = typer.Typer(help="Manage the keys that sign session tokens.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(audit_app, name="audit")
app.add_typer(webhooks_app, name="webhooks")


def _load(services: Services, text: str, source: str) -> None:
    try:
        report = services.directory_loader.load(parse_directory(text))
    except DirectoryFileError as error:
        raise fail(f"{source}: {error}") from None
    out.print(f"Loaded {source}: {report}", markup=False, highlight=False)


@directory_app.command("load")
def directory_load(path: Annotated[Path, typer.Argument(help="Directory JSON file")]) -> None:
    """Load users, organizations, workspaces, roles and memberships from PATH (idempotent)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise fail(f"cannot read {path}: {error}") from None
    services = open_services(load_settings())
    try:
        _load(services, text, str(path))
    finally:
        services.close()


@keys_app.command("rotate")
def keys_rotate() -> None:
    """Sign session tokens with a new key; old public keys stay published until tokens expire."""
    services = open_services(load_settings())
    try:
        kid = services.keys.rotate()
        out.print(f"new signing key {kid}", markup=False)
    finally:
        services.close()


@projections_app.command("status")
def projections_status() -> None:
    """Each projection's generation, position, the head of the event log, and the lag."""
    services = open_services(load_settings())
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
    signals = stop_signals()
    services = open_services(load_settings())
    services.worker.start()
    settle_heap()
    err.print("projection worker running; Ctrl-C to stop", markup=False)
    try:
        wait_for_signal(signals)
    finally:
        services.close()


@projections_app.command("rebuild")
def projections_rebuild(
    name: Annotated[str | None, typer.Argument(help="Projection to rebuild")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Rebuild every projection")] = False,
) -> None:
    """Rebuild from the first event into fresh tables, swapped in only when complete."""
    services = open_services(load_settings())
    try:
        names = [p.name for p in services.projectors]
        if all_ == (name is not None):
            raise fail(f"name one projection ({', '.join(names)}) or pass --all")
        if name is not None and name not in names:
            raise fail(f"no projection called {name!r}; there are: {', '.join(names)}")
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
        raise fail("--workers needs a shared store: memory:// lives inside one process")
    services = open_services(settings)
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
                run_workers("api.app:create_served_app", host, port, workers)
            finally:
                child.stop()
            return
        app_ = create_app(
            settings, services, run_worker=settings.run_projections and not separate, settle=True
        )
        try:
            uvicorn.run(
                app_, host=host, port=port, log_level="info", log_config=log_config(),
                # X-Forwarded-* are judged by our trusted-proxy settings alone (api/context.py):
                # uvicorn's own handling believes them from any local peer.
                http=EnvelopeRejections, proxy_headers=False,
            )  # fmt: skip
        finally:
            child.stop()
            services.close()


def main() -> None:
    """Console script entry point."""
    app()


if __name__ == "__main__":
    main()
