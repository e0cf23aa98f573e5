"""GET /session answered with the bytes rendered for the previous poll (``api.rendered``),
only while nothing the document shows has changed: not the session (its version), not its
users' profiles, and not what the passing of time hides (an attempt past its end).

The kept bodies serve the reads answered on the event loop (PostgreSQL over its async pool,
SQLite by the loop's own read of the file); where a store's reads go through a thread, the
same tests check the same behaviour of the thread's answer.
"""

from __future__ import annotations

import json
import time
from datetime import timedelta

from api.rendered import RenderedBodies
from infrastructure.directory_file import parse_directory
from tests.e2e.conftest import BuildStack
from tests.e2e.harness import Stack, sign_in_of
from tests.e2e.wire import ok
from tests.helpers import ALICE, BOB, DEMO_DIRECTORY

ATTEMPT_LIFETIME = timedelta(minutes=1)


def kept(stack: Stack) -> int:
    """How many sessions' bodies the app keeps."""
    rendered: RenderedBodies = stack.app.state.rendered_sessions
    return len(rendered)


def loop_answers(stack: Stack) -> bool:
    """Whether this store's reads are answered on the event loop (where bodies are kept)."""
    return stack.services.queries.reads_at_once


def test_an_unchanged_session_is_answered_alike_and_a_switch_shows_at_once(
    build_stack: BuildStack,
) -> None:
    # Given a browser with Alice and Bob signed in, Bob active, polling its session
    stack = build_stack()
    browser = stack.browser
    alice = browser.signed_in(ALICE)
    browser.signed_in(BOB)
    first = browser.get_session()
    second = browser.get_session()

    # Then the polls answer byte for byte alike (the second from the kept body)
    assert first.content == second.content
    assert kept(stack) == (1 if loop_answers(stack) else 0)

    # When another browser holding the same cookie switches to Alice
    other = stack.open_browser()
    other.use_cookie(browser.token)
    ok(other.switch_sign_in(alice["id"]))

    # Then the next poll shows Alice active
    assert browser.session()["active_signin_id"] == alice["id"]


def test_an_attempt_past_its_end_is_no_longer_shown(build_stack: BuildStack) -> None:
    # Given a session whose completed sign-in attempt is shown until its end, polled twice
    stack = build_stack(
        sign_in_attempt_lifetime_seconds=int(ATTEMPT_LIFETIME.total_seconds()),
        activity_resolution_seconds=3600,  # no activity is recorded by the polls below
    )
    browser = stack.browser
    browser.signed_in(ALICE)
    before = browser.session()
    assert len(before["signin_attempts"]) == 1
    assert browser.session() == before

    # When the attempt's end passes, nothing recorded since
    stack.clock.advance(ATTEMPT_LIFETIME + timedelta(seconds=1))
    after = browser.session()

    # Then the attempt is gone, though the session's version is the same
    assert after["signin_attempts"] == []
    assert after["updated_at"] == before["updated_at"]
    assert after["signins"] == before["signins"]


def test_a_changed_profile_is_shown_once_the_cached_one_is_stale(build_stack: BuildStack) -> None:
    # Given profiles cached for a second, and Alice's session polled
    stack = build_stack(directory_cache_seconds=1)
    browser = stack.browser
    browser.signed_in(ALICE)
    browser.get_session()
    assert sign_in_of(browser.session(), ALICE)["user"]["first_name"] == "Alice"

    # When an operator loads a directory naming her Alicia, and the cached profile ages out
    directory = json.loads(DEMO_DIRECTORY.read_text())
    directory["users"][0]["first_name"] = "Alicia"
    stack.services.directory_loader.load(parse_directory(json.dumps(directory)))
    time.sleep(1.2)

    # Then the session shows her new name, the session itself unchanged, poll after poll
    # (the first reads her profile again, the next find it in memory)
    for _ in range(2):
        assert sign_in_of(browser.session(), ALICE)["user"]["first_name"] == "Alicia"


def test_a_switch_to_the_active_sign_in_is_answered_like_a_poll(build_stack: BuildStack) -> None:
    """A switch that would record nothing (to the sign-in already active) is answered from
    the stored session read on the event loop, as GET /session is: its body is kept like a
    poll's."""
    # Given Alice then Bob signed in, the cookie remembered (by a token request), no poll
    stack = build_stack()
    browser = stack.browser
    browser.signed_in(ALICE)
    bob = browser.signed_in(BOB)["id"]
    assert browser.send("GET", "/session/token").status_code == 200
    events = stack.events_recorded()
    assert kept(stack) == 0

    # When the browser switches to Bob, who is active
    answer = ok(browser.switch_sign_in(bob))

    # Then the session is answered as it stands, nothing recorded, as a poll answers it
    assert answer["active_signin_id"] == bob
    assert stack.events_recorded() == events
    assert kept(stack) == (1 if loop_answers(stack) else 0)
    assert browser.session() == answer
