"""read_user_sign_ins, the live sign-ins by user behind GET /me/signins: a rebuild from the
first event gives exactly the rows the live projection kept, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tests.e2e.harness import Stack
from tests.e2e.wire import ok
from tests.helpers import ACME, ALICE, BOB, CAROL


def rows(stack: Stack) -> list[dict[str, Any]]:
    views = stack.services.views
    with views.read() as cursor:
        cursor.execute(f"SELECT * FROM {views.table('read_user_sign_ins')} ORDER BY sign_in_id")
        return [dict(row) for row in cursor.fetchall()]


def test_a_rebuild_gives_the_rows_the_live_projection_kept(build_stack: Any) -> None:
    stack: Stack = build_stack(sign_in_idle_timeout_seconds=7200)
    laptop, phone, tablet = stack.browser, stack.open_browser(), stack.open_browser()
    laptop.signed_in(ALICE)
    laptop.signed_in(BOB)
    stack.clock.advance(timedelta(minutes=5))
    on_phone = phone.signed_in(ALICE)
    tablet.signed_in(CAROL)
    ok(phone.switch_organization(ACME))
    stack.clock.advance(timedelta(hours=1))
    phone.session()  # the phone is in use (SignInActive)
    stack.clock.advance(timedelta(minutes=90))  # the laptop and tablet sign-ins go idle
    tablet.session()  # ... and the tablet notices (SignInExpired)
    phone_alice = ok(phone.send("GET", "/session"))["signins"][0]
    assert phone_alice["id"] == on_phone["id"]
    projector = stack.services.projector("user_sign_ins")
    projector.catch_up()
    before = rows(stack)
    # Alice and Bob on the laptop (idle, not yet noticed), Alice on the phone; Carol is gone
    assert sorted(r["user_id"] for r in before) == sorted([ALICE[2], BOB[2], ALICE[2]])
    projector.rebuild()
    assert projector.status().generation == 2
    assert rows(stack) == before
