"""GET /session's read from the event loop (``SessionQueries.projected_at_once``): it answers
only when one statement is all ``get_session`` would do, and says "ask the thread" (None)
whenever the cookie's token changed, the projection is behind, something is due to be
recorded or the store cannot read from the loop. Each test runs on PostgreSQL (reads over an
async pool, several sharing a statement) and on a SQLite file (the loop's own read)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta
from typing import TypeVar

import jwt
import pytest

from application.cookie_tokens import Remembered
from application.session_queries import ProjectedNow
from infrastructure.clock import SettableClock
from infrastructure.container import Services
from tests.helpers import ACME, ALICE, BOB, on_a_loop, services_for, signed_in

T = TypeVar("T")


@pytest.fixture
def clock() -> SettableClock:
    return SettableClock()


@pytest.fixture(params=["postgres", "sqlite"])
def services(request: pytest.FixtureRequest, clock: SettableClock) -> Iterator[Services]:
    url = request.getfixturevalue(f"{request.param}_url")
    with services_for(url, clock) as built:
        yield built


def at_once(services: Services, token: str) -> ProjectedNow | None:
    cookie = services.tokens.remembered(token)
    assert isinstance(cookie, Remembered)
    return on_a_loop(services, lambda: services.queries.projected_at_once(cookie))


def test_a_remembered_cookie_reads_the_session_as_get_session_does(services: Services) -> None:
    session_id, token = signed_in(services, ALICE, BOB)

    projected = at_once(services, token)

    assert projected is not None
    assert services.queries.document(projected) == services.queries.get_session(session_id)
    assert services.queries.rendering_from_memory(projected) is not None  # no organization


def test_a_changed_token_is_left_to_the_full_check(services: Services) -> None:
    # Given a remembered cookie whose token was then revoked (the sign-out rotated it)
    session_id, token = signed_in(services, ALICE)
    cookie = services.tokens.remembered(token)
    assert cookie is not None
    services.commands.sign_out(session_id, None, token)

    # Then the read from the loop does not answer for it
    assert on_a_loop(services, lambda: services.queries.projected_at_once(cookie)) is None


def test_a_projection_behind_the_events_is_left_to_the_thread(services: Services) -> None:
    # Given a switch recorded but not yet projected (the worker has not run)
    session_id, token = signed_in(services, ALICE, BOB)
    alice = next(s for s in services.queries.get_session(session_id).signins if s.user_id)
    services.commands.switch_sign_in(session_id, alice.id)  # commands do not project

    assert at_once(services, token) is None


def test_due_expiries_and_activity_are_left_to_the_thread(
    services: Services, clock: SettableClock
) -> None:
    _, token = signed_in(services, ALICE)
    clock.advance(timedelta(days=31))  # the sign-in has expired: an expiry must be recorded
    assert at_once(services, token) is None


def test_an_active_organization_is_rendered_with_a_read(services: Services) -> None:
    session_id, token = signed_in(services, ALICE)
    services.commands.switch_organization(session_id, ACME)
    services.worker.catch_up()

    projected = at_once(services, token)

    assert projected is not None
    assert services.queries.rendering_from_memory(projected) is None
    assert services.queries.document(projected) == services.queries.get_session(session_id)


def test_reads_made_together_each_get_their_own_session(services: Services) -> None:
    # Given six sessions read once (this process has their states decoded), then three of
    # them switched to Alice, and the cookie of another revoked by a sign-out
    browsers = [signed_in(services, ALICE, BOB) for _ in range(6)]
    cookies = [services.tokens.remembered(token) for _, token in browsers]
    for session_id, _ in browsers[:3]:
        alice = next(s for s in services.queries.get_session(session_id).signins if s.user_id)
        services.commands.switch_sign_in(session_id, alice.id)
    revoked_session, revoked_token = browsers[5]
    services.commands.sign_out(revoked_session, None, revoked_token)
    services.worker.catch_up()

    # When all six are read at once from one loop (they share statements)
    async def read_all() -> list[ProjectedNow | None]:
        reads = [services.queries.projected_at_once(c) for c in cookies if c is not None]
        return await asyncio.gather(*reads)

    projected = on_a_loop(services, read_all)

    # Then each read is its own session as it is now; the revoked cookie's is refused
    assert len(projected) == 6
    assert projected[5] is None
    for (session_id, _), read in zip(browsers[:5], projected[:5], strict=True):
        assert read is not None
        assert services.queries.document(read) == services.queries.get_session(session_id)
    users = [read.state.active_sign_in(read.now).user_id for read in projected[:5] if read]
    assert users == [int(ALICE[2])] * 3 + [int(BOB[2])] * 2


def test_without_an_open_pool_on_the_loop_nothing_is_read(postgres_url: str) -> None:
    with services_for(postgres_url) as services:
        _, token = signed_in(services, ALICE)
        cookie = services.tokens.remembered(token)
        assert cookie is not None
        assert asyncio.run(services.queries.projected_at_once(cookie)) is None


def test_sqlite_reads_on_the_loop_without_a_pool(sqlite_url: str) -> None:
    with services_for(sqlite_url) as services:
        session_id, token = signed_in(services, ALICE)
        cookie = services.tokens.remembered(token)
        assert cookie is not None
        assert services.async_reads is None
        projected = asyncio.run(services.queries.projected_at_once(cookie))
        assert projected is not None
        assert services.queries.document(projected) == services.queries.get_session(session_id)


def token_at_once(services: Services, token: str) -> tuple[str, int, object] | None:
    cookie = services.tokens.remembered(token)
    assert isinstance(cookie, Remembered)
    return on_a_loop(services, lambda: services.queries.session_token_at_once(cookie))


def test_a_session_token_is_signed_as_the_thread_signs_it(services: Services) -> None:
    # Given a signed-in browser that got a token the usual way (which loads the key)
    session_id, token = signed_in(services, ALICE)
    usual, usual_expires, usual_info = services.queries.session_token(session_id)

    # When its next token is signed from the loop
    answer = token_at_once(services, token)

    # Then it carries the same claims, key and expiry
    assert answer is not None
    signed, expires, info = answer
    assert (expires, info) == (usual_expires, usual_info)
    assert jwt.get_unverified_header(signed) == jwt.get_unverified_header(usual)
    assert jwt.decode(signed, options={"verify_signature": False}) == jwt.decode(
        usual, options={"verify_signature": False}
    )


def test_a_rotation_is_seen_by_the_very_next_token(services: Services) -> None:
    session_id, token = signed_in(services, ALICE)
    services.queries.session_token(session_id)  # the old key, loaded

    new_kid = services.keys.rotate()

    # The new key is not loaded here yet: the loop does not sign with the old one
    assert token_at_once(services, token) is None
    # once the thread has signed with (and loaded) the new key, the loop signs with it too
    services.queries.session_token(session_id)
    answer = token_at_once(services, token)
    assert answer is not None
    assert jwt.get_unverified_header(answer[0])["kid"] == new_kid


def test_a_token_for_an_organization_is_left_to_the_thread(services: Services) -> None:
    session_id, token = signed_in(services, ALICE)
    services.commands.switch_organization(session_id, ACME)
    services.worker.catch_up()
    services.queries.session_token(session_id)
    assert token_at_once(services, token) is None


def test_a_token_without_an_active_sign_in_is_refused_by_the_thread(services: Services) -> None:
    _, token = signed_in(services)  # a session nobody signed in to
    assert token_at_once(services, token) is None
