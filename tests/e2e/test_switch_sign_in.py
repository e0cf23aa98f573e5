"""POST /session/switch-sign-in: which account is active, and nothing else."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from infrastructure.audit.recorders import SealingPostgresApplicationRecorder
from tests.e2e.conftest import BuildStack
from tests.e2e.harness import Browser, Json, Stack, open_stack, sign_in_of
from tests.e2e.wire import assert_wire_formats, ok, session_cookie
from tests.helpers import ACME, ACME_DATA, ALICE, BOB, CAROL


def memberships(sign_in: Json) -> tuple[Any, ...]:
    """The organization and workspace a sign-in works in, in full."""
    return (
        sign_in["active_organization_membership_id"],
        sign_in["active_workspace_membership_id"],
        sign_in["active_organization_membership"],
        sign_in["active_workspace_membership"],
    )


def test_switching_makes_that_sign_in_the_active_one(browser: Browser) -> None:
    # Given Alice and then Bob signed in, so Bob is active
    alice = browser.signed_in(ALICE)
    bob = browser.signed_in(BOB)
    assert browser.session()["active_signin_id"] == bob["id"]
    token = browser.token

    # When the browser switches to Alice
    response = browser.switch_sign_in(alice["id"])

    # Then the response is the session after the switch, with Alice active and Bob still live
    data = ok(response)
    assert data["active_signin_id"] == alice["id"]
    assert data["active_signin"] == sign_in_of(data, ALICE)
    assert data["active_signin"]["user_id"] == ALICE[2]
    assert {s["id"] for s in data["signins"]} == {alice["id"], bob["id"]}
    assert assert_wire_formats(data) > 10
    # and the set of accounts did not change, so neither does the cookie
    assert session_cookie(response) is None
    assert browser.token == token
    assert browser.session() == data


def test_switching_to_the_active_sign_in_succeeds_and_records_nothing(stack: Stack) -> None:
    # Given Alice signed in and active, and some time passing
    browser = stack.browser
    alice = browser.signed_in(ALICE)
    before = browser.session()
    events = stack.events_recorded()
    stack.clock.advance(timedelta(minutes=5))

    # When the browser switches to Alice again
    response = browser.switch_sign_in(alice["id"])

    # Then it succeeds with the session as it was, and no event was recorded
    assert ok(response) == before
    assert stack.events_recorded() == events
    assert browser.session()["updated_at"] == before["updated_at"]


def test_switching_records_the_switch(stack: Stack) -> None:
    # Given Alice then Bob signed in, and some time passing
    browser = stack.browser
    alice = browser.signed_in(ALICE)
    browser.signed_in(BOB)
    before = browser.session()
    events = stack.events_recorded()
    stack.clock.advance(timedelta(minutes=5))

    # When the browser switches to Alice
    after = ok(browser.switch_sign_in(alice["id"]))

    # Then one more event is stored and the session was updated
    assert stack.events_recorded() == events + 1
    assert after["updated_at"] > before["updated_at"]
    assert after["created_at"] == before["created_at"]


def test_switching_never_changes_any_accounts_organization_or_workspace(browser: Browser) -> None:
    # Given Alice working in Acme Data, Bob in Acme without a workspace, Carol in nothing
    alice = browser.signed_in(ALICE)["id"]
    ok(browser.switch_workspace(ACME_DATA))
    bob = browser.signed_in(BOB)["id"]
    ok(browser.switch_organization(ACME))
    carol = browser.signed_in(CAROL)["id"]
    before = browser.session()
    chosen = {s["id"]: memberships(s) for s in before["signins"]}
    assert chosen[alice][3]["workspace_id"] == ACME_DATA
    assert chosen[bob][2]["organization_id"] == ACME
    assert chosen[bob][3] is None
    assert chosen[carol] == (None, None, None, None)

    # When the browser switches between them, back and forth
    for target in [alice, bob, carol, alice, carol, bob]:
        data = ok(browser.switch_sign_in(target))

        # Then each account comes back with the ones it had, active or not
        assert {s["id"]: memberships(s) for s in data["signins"]} == chosen
        assert memberships(data["active_signin"]) == chosen[target]


def test_switches_with_a_remembered_cookie_are_decided_on_the_event_loop(stack: Stack) -> None:
    """The hot lane decides and appends a switch from the event loop when this process
    remembers the cookie and the session; whatever it cannot decide there (the active one
    again, a sign-in not in the session) is answered as before, from a thread."""
    # Given Alice and then Bob signed in through this app, and a poll since (a new cookie
    # is resolved by its first request, then remembered)
    browser = stack.browser
    alice = browser.signed_in(ALICE)["id"]
    bob = browser.signed_in(BOB)["id"]
    assert browser.session()["active_signin_id"] == bob
    work = stack.services.auth.work
    at_once, events = work.decided_at_once, stack.events_recorded()

    # When the browser switches to Alice, to Bob and to Alice again
    answers = [ok(browser.switch_sign_in(target)) for target in (alice, bob, alice)]

    # Then each answer names its target active, each switch is one event, all on the loop
    assert [a["active_signin_id"] for a in answers] == [alice, bob, alice]
    assert stack.events_recorded() == events + 3
    assert work.decided_at_once == at_once + 3
    assert browser.session() == answers[-1]

    # And a switch to the active sign-in or to one not here is answered from a thread
    assert ok(browser.switch_sign_in(alice)) == answers[-1]
    refused = browser.switch_sign_in("1")
    assert refused.status_code == 400
    assert refused.json()["errors"][0]["code"] == "INVALID_SIGN_IN_ID"
    assert work.decided_at_once == at_once + 3
    assert stack.events_recorded() == events + 3


def test_a_switch_on_the_loop_that_loses_to_another_process_costs_one_conflict(
    build_stack: BuildStack,
) -> None:
    """A process whose guess of the session is stale (another process switched since) loses
    one append on the event loop, forgets its guess, and decides again in a thread on the
    stored session: not a second append on the same stale guess."""
    # Given two processes on one store, the first having signed Alice then Bob in (so it
    # remembers the session with Bob active), and the cookie remembered by both
    here, there = build_stack(), build_stack(load_demo=False)
    browser = here.browser
    alice = browser.signed_in(ALICE)["id"]
    browser.signed_in(BOB)
    assert browser.session()["active_signin_id"] != alice
    elsewhere = there.browser
    elsewhere.use_cookie(browser.token or "")
    elsewhere.session()

    # When the other process switches to Alice, behind the first one's guess
    assert ok(elsewhere.switch_sign_in(alice))["active_signin_id"] == alice
    events = here.events_recorded()
    work = here.services.auth.work

    # Then the first process's switch to Alice loses once on the loop, and the stored
    # session (Alice already active) answers it without another append
    assert ok(browser.switch_sign_in(alice))["active_signin_id"] == alice
    assert work.conflicts == 1
    assert work.decided_at_once == 0
    assert here.events_recorded() == events


FOLLOWED = 10.0  # seconds the log follower may take to read what another process appended


def test_a_process_following_the_log_decides_on_the_loop_after_another_process_switched(
    postgres_url: str,
) -> None:
    """With the log follower running (as in every serving process on PostgreSQL), a process
    has taken another process's switch into its guess before its own next switch: that one
    is decided on the loop, with no conflict, and its batch expects the chain heads the
    other process left."""
    with open_stack(postgres_url) as here, open_stack(postgres_url, load_demo=False) as there:
        follower = here.services.follower
        assert follower is not None
        follower.start()
        # Given Alice and then Bob signed in through this process, and the cookie
        # remembered by both processes
        browser = here.browser
        alice = browser.signed_in(ALICE)["id"]
        bob = browser.signed_in(BOB)["id"]
        assert browser.session()["active_signin_id"] == bob
        elsewhere = there.browser
        elsewhere.use_cookie(browser.token or "")
        elsewhere.session()

        # When the other process switches to Alice, and this one has followed the log so far
        assert ok(elsewhere.switch_sign_in(alice))["active_signin_id"] == alice
        followed_to = there.events_recorded()
        assert follower.wait_for(followed_to, FOLLOWED)
        work, recorder = here.services.auth.work, here.services.sessions.recorder
        assert isinstance(recorder, SealingPostgresApplicationRecorder)
        at_once, moved = work.decided_at_once, recorder.heads_moved

        # Then this process's switch to Bob is decided on the loop, without a conflict, and
        # appended at the first try
        assert ok(browser.switch_sign_in(bob))["active_signin_id"] == bob
        assert follower.applied == 1
        assert work.decided_at_once == at_once + 1
        assert work.conflicts == 0
        assert recorder.heads_moved == moved
        assert elsewhere.session()["active_signin_id"] == bob

        # And the process's health tells how far it has followed
        health = browser.send("GET", "/health").json()["data"]["follower"]
        assert health["applied"] == 1
        assert health["position"] >= followed_to
        assert health["error"] is None


def test_a_followed_event_after_a_gap_drops_the_guess(postgres_url: str) -> None:
    """An event that is not the next of the cached session (the follower started after,
    or missed, the one between) makes the process drop its guess: its next command reads
    the stored session instead of deciding on a stale one."""
    with open_stack(postgres_url) as here, open_stack(postgres_url, load_demo=False) as there:
        # Given Alice and Bob signed in through this process, the cookie remembered by both
        browser = here.browser
        alice = browser.signed_in(ALICE)["id"]
        bob = browser.signed_in(BOB)["id"]
        session_id = int(browser.session()["id"])
        elsewhere = there.browser
        elsewhere.use_cookie(browser.token or "")
        elsewhere.session()

        # When the other process switches to Alice before this one's follower starts, and
        # back to Bob after it has
        assert ok(elsewhere.switch_sign_in(alice))["active_signin_id"] == alice
        follower = here.services.follower
        assert follower is not None
        follower.start()
        assert follower.wait_for(there.events_recorded(), FOLLOWED)
        assert here.services.sessions.cached_session(session_id) is not None
        assert ok(elsewhere.switch_sign_in(bob))["active_signin_id"] == bob
        assert follower.wait_for(there.events_recorded(), FOLLOWED)

        # Then this process no longer guesses the session, and its switch to Alice is
        # decided on the stored session, without a conflict
        assert here.services.sessions.cached_session(session_id) is None
        assert follower.applied == 0
        assert ok(browser.switch_sign_in(alice))["active_signin_id"] == alice
        assert here.services.auth.work.conflicts == 0


def test_switches_past_a_snapshot_are_decided_on_the_loop_and_snapshotted(stack: Stack) -> None:
    """The switch that makes a snapshot due (every 50th event of a session) is decided on
    the loop like the others; the snapshot is written after its append, and matches."""
    # Given Alice and then Bob signed in, the cookie remembered
    browser = stack.browser
    alice = browser.signed_in(ALICE)["id"]
    bob = browser.signed_in(BOB)["id"]
    session_id = int(browser.session()["id"])
    sessions = stack.services.sessions
    cached = sessions.cached_session(session_id)
    assert cached is not None
    assert cached.version < 50
    work = stack.services.auth.work
    at_once = work.decided_at_once

    # When the browser switches back and forth until the session is past version 50
    switches = 52 - cached.version
    for n in range(switches):
        assert ok(browser.switch_sign_in(alice if n % 2 == 0 else bob))

    # Then every switch was decided on the loop, a snapshot was taken at version 50, and
    # the store verifies (snapshots included)
    assert work.decided_at_once == at_once + switches
    assert sessions.snapshots is not None
    taken = sessions.snapshots.recorder.select_events(cached.id)
    assert [s.originator_version for s in taken] == [50]
    report = stack.services.audit.verify()
    assert report.ok
    assert report.snapshots_checked == 1
