"""What the audit tests share: the admin token, the CLI, a recorded history, raw SQL on a store.

:class:`RawStore` reaches a store's tables the way an intruder with database access would
(``sqlite3`` on the file, ``psycopg`` on the schema), past the service and its seals.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

import httpx
import psycopg

from tests.e2e.harness import Browser, Json, Stack
from tests.helpers import ACME, ACME_WEB, ALICE, BOB, CAROL

REPO = Path(__file__).resolve().parents[2]
TOKEN = "audit-admin-token-0123456789"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
STEP = timedelta(minutes=1)


def admin_get(browser: Browser, path: str, **params: object) -> httpx.Response:
    """GET an admin route with the bearer token."""
    return browser.send("GET", path, params=params, headers=ADMIN)


def admin_data(browser: Browser, path: str, **params: object) -> Json:
    """The ``data`` of a successful admin GET."""
    response = admin_get(browser, path, **params)
    assert response.status_code == 200, response.text
    data: Json = response.json()["data"]
    return data


def session_events(browser: Browser, session_id: str) -> list[Json]:
    """GET /admin/sessions/{id}/events."""
    events: list[Json] = admin_data(browser, f"/admin/sessions/{session_id}/events")["events"]
    return events


def run_cli(
    args: Sequence[str], url: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``session-ledger ARGS`` on the store at ``url``, as a separate process."""
    exe = shutil.which("session-ledger")
    command = [exe] if exe else [sys.executable, "-m", "api.cli"]
    environment = {**os.environ, **(env or {}), "SESSION_LEDGER_DATABASE_URL": url}
    return subprocess.run(
        [*command, *args], env=environment, capture_output=True, text=True, timeout=120, cwd=REPO
    )


@dataclass(frozen=True)
class History:
    """The sessions :func:`record_history` made."""

    shared: str  # Alice and Bob in one browser: switches, a sign-out
    carol: str  # Carol: a wrong password, a sign-in, a sign-out of all


def record_history(stack: Stack) -> History:
    """Two sessions with every common kind of event, a minute apart each."""
    one, two = stack.browser, stack.open_browser()

    def ok(response: httpx.Response) -> None:
        assert response.status_code == 200, response.text
        stack.clock.advance(STEP)

    alice = one.signed_in(ALICE)
    stack.clock.advance(STEP)
    ok(one.switch_organization(ACME))
    ok(one.switch_workspace(ACME_WEB))
    bob = one.signed_in(BOB)
    stack.clock.advance(STEP)
    ok(one.switch_sign_in(alice["id"]))
    ok(one.sign_out(bob["id"]))
    assert two.sign_in(CAROL, password="not-carols-password").status_code == 400
    stack.clock.advance(STEP)
    carol = two.signed_in(CAROL)
    stack.clock.advance(STEP)
    ok(two.sign_out())
    return History(shared=str(alice["session_id"]), carol=str(carol["session_id"]))


@dataclass(frozen=True)
class StoredRow:
    """One row of the events table, as stored."""

    position: int
    originator_id: str  # 32 hex digits
    version: int
    topic: str
    state: bytes

    @property
    def session_id(self) -> str:
        """The wire id of the session (meaningful for session events only)."""
        return str(uuid.UUID(self.originator_id).int)

    @property
    def type(self) -> str:
        """The event's type, e.g. ``SignInCompleted``."""
        return self.topic.split(".")[-1]


class RawStore:
    """Direct SQL on a store's tables; statements name ``{events}``, ``{snapshots}``,
    ``{chain}`` and ``{position}`` and bind values with ``%s``."""

    def __init__(self, url: str) -> None:
        self.url = url
        if url.startswith("sqlite:///"):
            self.dialect = "sqlite"
            self._path = url.removeprefix("sqlite:///")
            self.names = {
                "events": "stored_events",
                "snapshots": "stored_snapshots",
                "chain": "audit_chain",
                "position": "rowid",
            }
            return
        self.dialect = "postgres"
        parts = urlsplit(url)
        schema = parse_qs(parts.query)["schema"][0]
        self._conninfo = urlunsplit(parts._replace(query=""))
        self.names = {
            "events": f"{schema}.sessions_events",
            "snapshots": f"{schema}.sessions_snapshots",
            "chain": f"{schema}.audit_chain",
            "position": "notification_id",
        }

    def _sql(self, statement: str) -> str:
        sql = statement.format(**self.names)
        return sql.replace("%s", "?") if self.dialect == "sqlite" else sql

    def execute(self, *statements: tuple[str, Sequence[Any]]) -> None:
        """Run statements in one committed transaction."""
        if self.dialect == "sqlite":
            connection = sqlite3.connect(self._path)
            try:
                with connection:
                    for statement, params in statements:
                        connection.execute(self._sql(statement), tuple(params))
            finally:
                connection.close()
            return
        with psycopg.connect(self._conninfo) as conn:
            for statement, params in statements:
                conn.execute(self._sql(statement), tuple(params))

    def query(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of one SELECT."""
        if self.dialect == "sqlite":
            connection = sqlite3.connect(self._path)
            try:
                return list(connection.execute(self._sql(statement), tuple(params)))
            finally:
                connection.close()
        with psycopg.connect(self._conninfo) as conn:
            return list(conn.execute(self._sql(statement), tuple(params)))

    def rows(self) -> list[StoredRow]:
        """Every stored event, in log order."""
        found = self.query(
            "SELECT {position}, originator_id, originator_version, topic, state "
            "FROM {events} ORDER BY {position}"
        )
        return [
            StoredRow(int(p), uuid.UUID(str(o)).hex, int(v), str(t), bytes(s))
            for p, o, v, t, s in found
        ]
