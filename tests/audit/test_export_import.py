"""Export and import: `audit export` then `audit import` into an empty store reproduces it.

Given a store with a recorded history, when it is exported with ``session-ledger audit
export`` and imported with ``session-ledger audit import`` into an empty store (another
SQLite file, another PostgreSQL schema, or across the two), then every session has the same
history and state, every event is the same, and the chain head is the same.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from tests.audit.support import TOKEN, History, record_history, run_cli
from tests.e2e.harness import Json, open_stack
from tests.helpers import services_for

pytestmark = pytest.mark.slow  # `session-ledger audit export/import` as processes


@dataclass(frozen=True)
class Picture:
    """Everything an auditor can read from a store, positions aside (they are not hashed)."""

    sessions: dict[str, tuple[list[Json], Json]]  # id -> (history, state now)
    events: list[Json]  # every export line
    head: str


def without_position(line: Json) -> Json:
    return {k: v for k, v in line.items() if k != "position"}


def picture(url: str, history: History) -> Picture:
    """What the store holds, read through the audit trail (demo directory loaded)."""
    with services_for(url) as services:
        audit = services.audit
        sessions = {}
        for session_id in (history.shared, history.carol):
            events = [without_position(e.as_json()) for e in audit.history(int(session_id))]
            state = audit.state(int(session_id))[0].model_dump(mode="json")
            sessions[session_id] = (events, state)
        exported = io.StringIO()
        audit.export(exported)
        lines = [json.loads(line) for line in exported.getvalue().splitlines()]
        positions = [line["position"] for line in lines]
        assert positions == sorted(set(positions))
        report = audit.verify()
        assert report.ok, report.problem
        return Picture(sessions, [without_position(line) for line in lines], report.head_hash)


def recorded(url: str) -> History:
    with open_stack(url, admin_token=TOKEN) as stack:
        return record_history(stack)


def exported_in_process(url: str) -> list[Json]:
    """Every export line, from the audit trail in this process."""
    with services_for(url, load_demo=False) as services:
        exported = io.StringIO()
        services.audit.export(exported)
    return [json.loads(line) for line in exported.getvalue().splitlines()]


def export_to(path: Path, url: str, *options: str) -> list[Json]:
    """``audit export --output PATH``; the lines written."""
    result = run_cli(["audit", "export", "--output", str(path), *options], url)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert f"exported {len(lines)} events" in result.stderr
    return lines


def import_into(url: str, path: Path, count: int, head: str) -> None:
    result = run_cli(["audit", "import", str(path)], url)
    assert result.returncode == 0, result.stderr
    assert f"imported {count} events; chain head {head}" in result.stdout


def test_an_export_imported_into_an_empty_store_reproduces_it(
    durable_database_url: str, empty_store: str, tmp_path: Path
) -> None:
    history = recorded(durable_database_url)
    before = picture(durable_database_url, history)
    export = tmp_path / "audit.jsonl"

    lines = export_to(export, durable_database_url)
    import_into(empty_store, export, len(lines), before.head)

    assert {line["format"] for line in lines} == {"session-ledger-audit/1"}
    assert lines[-1]["global_hash"] == before.head
    assert [without_position(line) for line in lines] == before.events
    assert picture(empty_store, history) == before


def test_an_export_from_sqlite_imports_into_postgresql_with_the_same_head(
    sqlite_url: str, postgres_url: str, tmp_path: Path
) -> None:
    history = recorded(sqlite_url)
    before = picture(sqlite_url, history)
    export = tmp_path / "audit.jsonl"

    lines = export_to(export, sqlite_url)
    import_into(postgres_url, export, len(lines), before.head)

    assert picture(postgres_url, history) == before


def test_export_since_keeps_only_the_events_from_that_time(
    durable_database_url: str, tmp_path: Path
) -> None:
    recorded(durable_database_url)
    everything = exported_in_process(durable_database_url)
    since = everything[len(everything) // 2]["time"]  # e.g. 2030-01-01T09:04:00.000Z
    expected = [line for line in everything if line["time"] >= since]
    assert 0 < len(expected) < len(everything)

    to_stdout = run_cli(["audit", "export", "--since", since], durable_database_url)
    assert to_stdout.returncode == 0, to_stdout.stderr
    assert [json.loads(line) for line in to_stdout.stdout.splitlines()] == expected

    # the same moment, written in another zone
    moment = datetime.fromisoformat(since.replace("Z", "+00:00"))
    elsewhere = moment.astimezone(timezone(timedelta(hours=2))).isoformat()
    zoned = export_to(tmp_path / "zoned.jsonl", durable_database_url, "--since", elsewhere)
    assert zoned == expected


def test_import_into_a_store_that_has_events_is_refused(
    durable_database_url: str, tmp_path: Path
) -> None:
    history = recorded(durable_database_url)
    before = picture(durable_database_url, history)
    export = tmp_path / "audit.jsonl"
    export_to(export, durable_database_url)

    result = run_cli(["audit", "import", str(export)], durable_database_url)

    assert result.returncode != 0
    assert "Import needs an empty store." in result.stderr
    assert "Traceback" not in result.stderr
    assert picture(durable_database_url, history) == before


def test_import_of_a_partial_export_is_refused_before_anything_is_written(
    durable_database_url: str, empty_store: str, tmp_path: Path
) -> None:
    recorded(durable_database_url)
    everything = exported_in_process(durable_database_url)
    partial = tmp_path / "partial.jsonl"
    export_to(partial, durable_database_url, "--since", everything[len(everything) // 2]["time"])

    result = run_cli(["audit", "import", str(partial)], empty_store)

    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "session-ledger:" in result.stderr  # one clear line
    with services_for(empty_store, load_demo=False) as services:
        written: Any = services.sessions.recorder.max_notification_id()
    assert not written
