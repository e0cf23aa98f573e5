"""On SQLite the session view's rows for a batch are worked out before the write
transaction (read, folded, encoded in a read transaction) and written in a short one, so the
serving process's appends wait less for the one write lock. They are written only if the
view's position is still the one they were worked out from; if another catch-up moved it
in between (a request catching the view up, another worker), the batch is applied afresh
and nothing is written twice or rolled back."""

from __future__ import annotations

from typing import Any

from infrastructure.projections.engine import Projector
from tests.e2e.harness import Stack, open_stack
from tests.helpers import ALICE, BOB


def _row(projector: Projector, session_id: str) -> tuple[int, str]:
    """The view's version and state of a session."""
    with projector.db.read() as cursor:
        cursor.execute(
            f"SELECT version, state FROM {projector.db.table('read_sessions')} "
            "WHERE session_id = %(id)s",
            {"id": session_id},
        )
        row: Any = cursor.fetchone()
    return int(row["version"]), str(row["state"])


def _switch(stack: Stack, to: dict[str, Any]) -> None:
    response = stack.browser.switch_sign_in(to["id"])
    assert response.status_code == 200, response.text


def _signed_in_twice_and_projected(
    stack: Stack,
) -> tuple[Projector, dict[str, Any], dict[str, Any], str, int]:
    """Alice then Bob signed in, the session view caught up: the view, both sign-ins, the
    session's id and the view's position."""
    view = stack.services.projector("sessions")
    alice = stack.browser.signed_in(ALICE)
    bob = stack.browser.signed_in(BOB)
    session_id = stack.browser.session()["id"]
    return view, alice, bob, session_id, view.catch_up()


def test_prepared_rows_are_written_when_nothing_moved_the_view(sqlite_url: str) -> None:
    with open_stack(sqlite_url) as stack:
        view, alice, bob, session_id, start = _signed_in_twice_and_projected(stack)
        _switch(stack, alice)
        _switch(stack, bob)
        notifications = view.log.read(start)
        prepared = view.prepare(notifications, {})
        assert prepared is not None
        assert prepared.position == start

        with view.db.transaction(immediate=True) as cursor:
            reached = view.apply_within(cursor, notifications, {}, prepared)

        assert reached == prepared.reaches == notifications[-1].id == view.position()
        version, state = _row(view, session_id)
        assert version == stack.services.sessions.load_session(int(session_id)).version
        rebuilt = view.rebuild()  # the same rows, folded from the whole log
        assert rebuilt == reached
        assert _row(view, session_id) == (version, state)


def test_prepared_rows_are_dropped_when_another_catch_up_moved_the_view(
    sqlite_url: str,
) -> None:
    with open_stack(sqlite_url) as stack:
        view, alice, bob, session_id, start = _signed_in_twice_and_projected(stack)
        _switch(stack, alice)
        notifications = view.log.read(start)
        prepared = view.prepare(notifications, {})
        assert prepared is not None

        # Meanwhile the session moves on and another catch-up writes all of it
        _switch(stack, bob)
        moved = view.catch_up()
        assert moved > prepared.reaches
        after = _row(view, session_id)

        # Then the prepared rows (Alice active, one version behind) are not written
        with view.db.transaction(immediate=True) as cursor:
            reached = view.apply_within(cursor, notifications, {}, prepared)
        assert reached == moved == view.position()
        assert _row(view, session_id) == after
        assert after[0] == stack.services.sessions.load_session(int(session_id)).version


def test_postgres_applies_in_the_write_transaction_as_before(postgres_url: str) -> None:
    with open_stack(postgres_url) as stack:
        view, alice, _, _, start = _signed_in_twice_and_projected(stack)
        _switch(stack, alice)
        assert view.prepare(view.log.read(start), {}) is None  # no single write lock there
