"""Every SQL example in docs/analytics.md runs as written, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from infrastructure.clock import SettableClock
from tests.helpers import ACME, ALICE, BOB, services_for

DOC = Path(__file__).resolve().parents[2] / "docs" / "analytics.md"
QUERIES = re.findall(r"```sql\n(.*?)```", DOC.read_text(), flags=re.S)


def test_the_doc_has_examples() -> None:
    assert len(QUERIES) >= 8


def test_every_documented_view_exists_and_every_example_runs(durable_database_url: str) -> None:
    with services_for(durable_database_url, clock=SettableClock()) as services:
        sessions = services.commands
        started = sessions.start_session()
        session_id = int(started.document.id)
        first = services.auth.sign_in_with_password(session_id, *ALICE[:2], started.new_token)
        sessions.switch_organization(session_id, ACME)
        second = services.auth.sign_in_with_password(session_id, *BOB[:2], first.new_token)
        alice = next(s.id for s in second.document.signins if s.user_id == ALICE[2])
        sessions.switch_sign_in(session_id, alice)
        services.worker.catch_up()
        documented = set(re.findall(r"^### `(analytics_\w+)`", DOC.read_text(), flags=re.M))
        with services.views.transaction(commit=False) as cursor:
            if services.views.dialect == "postgres":
                # The docs query unqualified names, as an analyst on the default schema would.
                cursor.execute(f"SET search_path TO {services.views.table('x')[:-2]}")
            for view in sorted(documented):
                cursor.execute(f"SELECT * FROM {view}")
            results = []
            for query in QUERIES:
                cursor.execute(query)
                results.append(cursor.fetchall())
    assert len(documented) == 9
    switches = results[1]
    assert [row["switches"] for row in switches] == [1]
    multi_account = next(r for r in results if r and "multi_account_sessions" in r[0])
    assert multi_account[0]["multi_account_sessions"] == 1


@pytest.mark.parametrize("query", QUERIES)
def test_examples_end_with_a_semicolon(query: str) -> None:
    assert query.strip().endswith(";")
