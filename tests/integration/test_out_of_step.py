"""A process whose copy of a session is ahead of the store never leaves a gap in its history.

A commit is visible on a PostgreSQL primary before its synchronous standby has it, so a read
(a fast-forward, the log follower) can see an event that a failover then loses. A command
decided on that copy would append at a version past the last recorded plus one; the unique
key would not object, and the verifier would then report a version missing. The append
checks that it continues the session as recorded (``OutOfStep`` otherwise) and the command
is decided again on the session read from the store.
"""

from __future__ import annotations

from domain.session import Session
from tests.e2e.harness import Stack, open_stack
from tests.e2e.wire import ok
from tests.helpers import ALICE, BOB


def _ahead_of_the_store(stack: Stack, session_id: int, sign_in_id: str) -> None:
    """Give the process's cached session an event the store does not have (as if read on a
    primary that then failed over): a switch to ``sign_in_id``."""
    sessions = stack.services.sessions
    copy = sessions.cached_session(session_id)
    assert isinstance(copy, Session)
    copy.switch_sign_in(int(sign_in_id), stack.clock.now())
    (event,) = copy.collect_events()
    assert sessions.follow([sessions.mapper.to_stored_event(event)]) == 1


def _versions(stack: Stack, session_id: int) -> list[int]:
    sessions = stack.services.sessions
    cached = sessions.cached_session(session_id)
    originator = cached.id if cached else sessions.read_session(session_id).id
    return [e.originator_version for e in sessions.recorder.select_events(originator)]


def test_a_switch_on_a_copy_ahead_of_the_store_records_no_gap(postgres_url: str) -> None:
    with open_stack(postgres_url) as stack:
        # Given Alice then Bob signed in (Bob active), and this process's copy of the
        # session ahead of the store by a switch to Alice the store never recorded
        browser = stack.browser
        alice = browser.signed_in(ALICE)["id"]
        bob = browser.signed_in(BOB)["id"]
        session_id = int(browser.session()["id"])
        recorded = _versions(stack, session_id)
        _ahead_of_the_store(stack, session_id, alice)

        # When the browser switches to Bob (on the loop: the copy says Alice is active)
        answer = ok(browser.switch_sign_in(bob))

        # Then Bob is active, as the store says, nothing was recorded, and the history
        # verifies; the process decided again on the stored session
        assert answer["active_signin_id"] == bob
        assert _versions(stack, session_id) == recorded
        assert stack.services.audit.verify().ok
        assert stack.services.auth.work.conflicts >= 1

        # And a switch to Alice is recorded right after the last recorded version
        assert ok(browser.switch_sign_in(alice))["active_signin_id"] == alice
        assert _versions(stack, session_id) == [*recorded, recorded[-1] + 1]
        assert stack.services.audit.verify().ok


def test_a_command_in_a_thread_on_a_copy_ahead_of_the_store_records_no_gap(
    postgres_url: str,
) -> None:
    with open_stack(postgres_url) as stack:
        # Given the same session, this process's copy ahead of the store by a switch to Alice
        browser = stack.browser
        alice = browser.signed_in(ALICE)["id"]
        browser.signed_in(BOB)
        session_id = int(browser.session()["id"])
        recorded = _versions(stack, session_id)
        _ahead_of_the_store(stack, session_id, alice)

        # When a sign-out of Alice runs (a command decided in a thread)
        result = stack.services.commands.sign_out(session_id, alice, None)

        # Then it is recorded right after the last recorded version (the sign-in ended and
        # the cookie token rotated: two events), and the history verifies
        assert [s.user_id for s in result.document.signins] == [BOB[2]]
        versions = _versions(stack, session_id)
        assert versions[: len(recorded)] == recorded
        assert versions[len(recorded)] == recorded[-1] + 1
        assert stack.services.audit.verify().ok
