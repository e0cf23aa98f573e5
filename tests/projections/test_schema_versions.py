"""A projection whose code changed is rebuilt on start, even when its views change shape."""

from __future__ import annotations

from infrastructure.clock import SettableClock
from tests.helpers import ALICE, services_for


def test_an_outdated_projection_is_rebuilt_before_serving(durable_database_url: str) -> None:
    # Given a store whose analytics were built by an older version, with an older view shape
    with services_for(durable_database_url, clock=SettableClock()) as services:
        started = services.commands.start_session()
        services.auth.sign_in_with_password(
            int(started.document.id), ALICE[0], ALICE[1], started.new_token
        )
        services.worker.catch_up()
        generation = services.projector("analytics").status().generation
        view = services.views.table("analytics_daily_sign_in_attempts")
        attempts = services.views.table("analytics_sign_in_attempts")
        with services.views.transaction() as cursor:
            cursor.execute(f"UPDATE {services.views.table('projection_state')} SET version = 1 "
                           "WHERE name = 'analytics'")  # fmt: skip
            cursor.execute(f"DROP VIEW {view}")
            cursor.execute(f"CREATE VIEW {view} AS SELECT method FROM {attempts}")

    # When the service starts with the current code
    with services_for(durable_database_url, clock=SettableClock(), load_demo=False) as services:
        status = services.projector("analytics").status()
        with services.views.transaction(commit=False) as cursor:
            cursor.execute(f"SELECT * FROM {view}")
            rows = cursor.fetchall()

    # Then it rebuilt them into a new generation, in the current shape, caught up
    assert status.generation == generation + 1
    assert status.lag == 0
    assert [(r["kind"], r["method"], r["attempted"], r["completed"]) for r in rows] == [
        ("sign_in", "plain_email", 1, 1)
    ]
