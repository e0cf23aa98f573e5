"""What the projection tests share: fresh stores, every view's rows, the history, a reset.

Rows are compared exactly as the database returns them; only their order is normalised
(views have none). Views are named by the projections themselves, so a view added later is
compared too.
"""

from __future__ import annotations

import re
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from application.read_model import rfc3339
from domain.session import Session
from infrastructure.container import Services
from infrastructure.sql import SqlDatabase

# Far in the future, so no sign-in is ever past its lifetime by the database's clock and
# ``analytics_session_state`` (computed at query time) does not change between two reads.
START = datetime(2030, 1, 1, 9, 0, tzinfo=UTC)

Rows = list[tuple[tuple[str, Any], ...]]
GENERATION_TABLE = re.compile(r".+_g\d+$")


def console_script() -> str:
    """The installed ``session-ledger`` of this interpreter (not a shim that execs it)."""
    beside = Path(sys.executable).with_name("session-ledger")
    if beside.exists():
        return str(beside)
    return shutil.which("session-ledger") or ""


def view_names(services: Services) -> list[str]:
    """Every view of every projection, in creation order."""
    names: list[str] = []
    for projector in services.projectors:
        generation = projector.status().generation
        names += [
            name for name, _ in projector.projection.view_statements(services.views, generation)
        ]
    return names


def rows_of(db: SqlDatabase, view: str) -> Rows:
    """All rows of a view, as ``(column, value)`` tuples, in a fixed order."""
    with db.transaction(commit=False) as cursor:
        cursor.execute(f"SELECT * FROM {db.table(view)}")
        rows = cursor.fetchall()
    return sorted((tuple(row.items()) for row in rows), key=repr)


def dicts(db: SqlDatabase, view: str) -> list[dict[str, Any]]:
    """The rows of a view as dicts."""
    return [dict(row) for row in rows_of(db, view)]


def records(db: SqlDatabase, view: str, key: str) -> dict[Any, dict[str, Any]]:
    """The rows of a view as dicts, by the value of their (unique) ``key`` column."""
    rows = dicts(db, view)
    found = {row[key]: row for row in rows}
    assert len(found) == len(rows), f"{view}.{key} is not unique"
    return found


def all_rows(services: Services) -> dict[str, Rows]:
    """The rows of every projection view."""
    return {view: rows_of(services.views, view) for view in view_names(services)}


def count(db: SqlDatabase, view: str) -> int:
    """How many rows a view has."""
    with db.transaction(commit=False) as cursor:
        cursor.execute(f"SELECT count(*) AS n FROM {db.table(view)}")
        row = cursor.fetchone()
    assert row is not None
    return int(row["n"])


def differences(before: dict[str, Rows], after: dict[str, Rows]) -> dict[str, Any]:
    """Per view, the rows only one side has (empty when both agree)."""
    found: dict[str, Any] = {}
    for view in sorted(set(before) | set(after)):
        old, new = before.get(view, []), after.get(view, [])
        if old != new:
            found[view] = {
                "only_before": [r for r in old if r not in new][:3],
                "only_after": [r for r in new if r not in old][:3],
                "counts": (len(old), len(new)),
            }
    return found


def rebuild_all(services: Services) -> None:
    """Rebuild every projection from the first event."""
    for projector in services.projectors:
        projector.rebuild()


def session_events(services: Services) -> list[tuple[int, Any]]:
    """Every Session event of the log, decoded, with its position."""
    app = services.sessions
    found: list[tuple[int, Any]] = []
    position = 0
    while notifications := app.recorder.select_notifications(
        start=position, limit=1000, inclusive_of_start=False
    ):
        for notification in notifications:
            event = app.mapper.to_domain_event(notification)
            if isinstance(event, Session.Event):
                found.append((notification.id, event))
        position = notifications[-1].id
    return found


def stored_time(db: SqlDatabase, moment: datetime | None) -> Any:
    """A time as a projection table gives it back on this store."""
    if moment is None or db.dialect == "postgres":
        return moment
    return rfc3339(moment)


def day_of(moment: datetime) -> str:
    """The UTC calendar day the daily views group a time by, as text."""
    return moment.astimezone(UTC).date().isoformat()


def reset_projections(db: SqlDatabase) -> None:
    """Drop every view and generation table of the projections and forget their positions."""
    with db.transaction() as cursor:
        if db.dialect == "postgres":
            schema = getattr(db.datastore, "schema", "") or "public"
            cursor.execute(
                "SELECT table_name AS name, table_type AS kind FROM information_schema.tables "
                "WHERE table_schema = %(schema)s",
                {"schema": schema},
            )
            found = [
                (r["name"], "view" if r["kind"] == "VIEW" else "table") for r in cursor.fetchall()
            ]
        else:
            cursor.execute(
                "SELECT name, type AS kind FROM sqlite_master WHERE type IN ('table', 'view')"
            )
            found = [(r["name"], r["kind"]) for r in cursor.fetchall()]
        cascade = " CASCADE" if db.dialect == "postgres" else ""
        for name, kind in found:
            if kind == "view" and (
                name.startswith("analytics_") or name in ("read_sessions", "read_user_sign_ins")
            ):
                cursor.execute(f"DROP VIEW IF EXISTS {db.table(name)}{cascade}")
        for name, kind in found:
            if kind == "table" and GENERATION_TABLE.fullmatch(name):
                cursor.execute(f"DROP TABLE IF EXISTS {db.table(name)}{cascade}")
        cursor.execute(f"DELETE FROM {db.table('projection_state')}")


def tables_and_views(db: SqlDatabase) -> set[str]:
    """The names of every table and view of the database (or PostgreSQL schema)."""
    with db.transaction(commit=False) as cursor:
        if db.dialect == "postgres":
            cursor.execute(
                "SELECT table_name AS name FROM information_schema.tables "
                "WHERE table_schema = %(schema)s",
                {"schema": getattr(db.datastore, "schema", "") or "public"},
            )
        else:
            cursor.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")
        return {str(r["name"]) for r in cursor.fetchall()}
