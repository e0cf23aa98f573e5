"""Stateful property test: the projections agree with the aggregates and with the history.

Hypothesis drives the sessions application's public commands (sign-ins with right and wrong
passwords, switches of sign-in, organization and workspace to valid and invalid ids,
sign-outs, clock moves past expiry, partial catch-ups of one projection) on each store. After
every step, once the worker has caught up:

(a) every ``read_sessions`` row, decoded, renders the same document as the aggregate;
(c) every analytics view tells what the stored events tell.

And (b), as a step of its own: a rebuild of every projection gives exactly the rows of every
view it had before.
"""

from __future__ import annotations

from collections import Counter
from contextlib import ExitStack
from datetime import datetime, timedelta
from typing import Any, ClassVar

from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from application.read_model import session_document
from domain.errors import SessionLedgerError
from domain.ids import aggregate_uuid
from domain.session import Session
from infrastructure.clock import SettableClock
from infrastructure.container import Services
from infrastructure.projections.session_view import SessionStateCodec
from tests.conftest import fresh_store
from tests.helpers import (
    ACME,
    ACME_DATA,
    ACME_WEB,
    ALICE,
    BOB,
    CAROL,
    GLOBEX,
    each_store,
    run_machine,
    services_for,
)
from tests.projections.support import (
    START,
    all_rows,
    count,
    day_of,
    dicts,
    differences,
    records,
    session_events,
    stored_time,
)
from tests.projections.traffic import sign_in

LIFETIME = timedelta(hours=2)
IDLE_TIMEOUT = timedelta(hours=1)  # sign-ins end by idling, or by their lifetime
ATTEMPT_LIFETIME = timedelta(minutes=30)
ACCOUNTS = [ALICE, BOB, CAROL, ("nobody@example.com", "nobody-password", "")]
BAD_IDS = ["", "0", "01", "abc", "-1", "18446744073709551616", "123456789012345678"]
CLOCK_STEPS = [
    timedelta(minutes=1),
    timedelta(minutes=20),  # past the activity resolution: reading records SignInActive
    timedelta(minutes=31),  # past an attempt's lifetime
    IDLE_TIMEOUT,
    LIFETIME,
    timedelta(hours=25),  # past an attempt's retention in the state
]
END_REASONS = {
    "SignedOut": "signed_out",
    "SignedOutOfAll": "signed_out_all",
    "SignInExpired": "expired",
}


class ProjectionMachine(RuleBasedStateMachine):
    """Commands on up to three sessions; the views checked against aggregates and history."""

    store: ClassVar[str] = "memory"

    def __init__(self) -> None:
        super().__init__()
        self.clock = SettableClock(START)
        self.exits = ExitStack()
        url = self.exits.enter_context(fresh_store(self.store))
        self.services: Services = self.exits.enter_context(
            services_for(
                url,
                clock=self.clock,
                max_sign_ins=2,
                sign_in_lifetime_seconds=int(LIFETIME.total_seconds()),
                sign_in_idle_timeout_seconds=int(IDLE_TIMEOUT.total_seconds()),
                sign_in_attempt_lifetime_seconds=int(ATTEMPT_LIFETIME.total_seconds()),
                postgres_pool_size=2,
                rate_limits=False,
            )
        )
        self.sessions: list[int] = []
        self.tokens: dict[int, str | None] = {}
        self.sign_in_ids: list[str] = []

    def teardown(self) -> None:
        try:
            self.rebuild()  # (b) at the end of every example, whatever steps it took
        finally:
            self.exits.close()

    def pick(self, index: int) -> int:
        return self.sessions[index % len(self.sessions)]

    def attempt(self, command: Any) -> Any:
        """Run a command; refusals are part of the traffic, not failures of this test."""
        try:
            return command()
        except SessionLedgerError:
            return None

    def remember(self, session_id: int, result: Any) -> None:
        if result is None:
            return
        if result.new_token:
            self.tokens[session_id] = result.new_token
        for added in result.document.signins:
            if added.id not in self.sign_in_ids:
                self.sign_in_ids.append(added.id)

    def sign_in_id(self, session_id: int) -> st.SearchStrategy[str]:
        """Mostly a live sign-in of the session; else one of another session, ended, or bad."""
        session: Session = self.services.sessions.repository.get(aggregate_uuid(session_id))
        live = [str(s.id) for s in session.live_sign_ins(self.clock.now())]
        others = st.sampled_from(BAD_IDS + self.sign_in_ids)
        return st.sampled_from(live) | others if live else others

    # Rules ------------------------------------------------------------------------------

    @initialize()
    def first_session(self) -> None:
        self.start_session()

    @precondition(lambda self: len(self.sessions) < 3)
    @rule()
    def start_session(self) -> None:
        started = self.services.commands.start_session()
        session_id = int(started.document.id)
        self.sessions.append(session_id)
        self.tokens[session_id] = started.new_token

    @rule(index=st.integers(0, 2), account=st.sampled_from(ACCOUNTS), how=st.integers(0, 3))
    def sign_in(self, index: int, account: tuple[str, str, str], how: int) -> None:
        session_id = self.pick(index)
        email, password, _ = account
        if how == 0:
            password = "wrong-" + password
        result = self.attempt(
            lambda: sign_in(self.services, session_id, email, password, self.tokens[session_id])
        )
        self.remember(session_id, result)

    @rule(index=st.integers(0, 2), accounts=st.permutations([ALICE, BOB, CAROL]))
    def sign_in_several(self, index: int, accounts: list[tuple[str, str, str]]) -> None:
        """Fill the session up to its limit, so that there is something to switch between."""
        session_id = self.pick(index)
        for email, password, _ in accounts:
            result = self.attempt(
                lambda e=email, p=password: sign_in(
                    self.services, session_id, e, p, self.tokens[session_id]
                )
            )
            self.remember(session_id, result)

    @rule(index=st.integers(0, 2), data=st.data())
    def switch_sign_in(self, index: int, data: st.DataObject) -> None:
        session_id = self.pick(index)
        raw = data.draw(self.sign_in_id(session_id), label="sign_in_id")
        self.attempt(lambda: self.services.commands.switch_sign_in(session_id, raw))

    @rule(index=st.integers(0, 2))
    def switch_to_another_sign_in(self, index: int) -> None:
        session_id = self.pick(index)
        session: Session = self.services.sessions.repository.get(aggregate_uuid(session_id))
        others = [
            s.id
            for s in session.live_sign_ins(self.clock.now())
            if s.id != session.active_sign_in_id
        ]
        if others:  # refused if it has idled out meanwhile
            self.attempt(lambda: self.services.commands.switch_sign_in(session_id, str(others[0])))

    @rule(index=st.integers(0, 2), data=st.data(), everything=st.booleans())
    def sign_out(self, index: int, data: st.DataObject, everything: bool) -> None:
        session_id = self.pick(index)
        raw = None if everything else data.draw(self.sign_in_id(session_id), label="sign_in_id")
        result = self.attempt(
            lambda: self.services.commands.sign_out(session_id, raw, self.tokens[session_id])
        )
        self.remember(session_id, result)

    @rule(index=st.integers(0, 2), raw=st.sampled_from([ACME, GLOBEX, "", ACME_WEB, "01"]))
    def switch_organization(self, index: int, raw: str) -> None:
        session_id = self.pick(index)
        self.attempt(lambda: self.services.commands.switch_organization(session_id, raw))

    @rule(index=st.integers(0, 2), raw=st.sampled_from([ACME_WEB, ACME_DATA, "", ACME, "x"]))
    def switch_workspace(self, index: int, raw: str) -> None:
        session_id = self.pick(index)
        self.attempt(lambda: self.services.commands.switch_workspace(session_id, raw))

    @rule(step=st.sampled_from(CLOCK_STEPS))
    def advance_clock(self, step: timedelta) -> None:
        self.clock.advance(step)

    @rule(index=st.integers(0, 2))
    def get_session(self, index: int) -> None:
        """Reading a session records the expiries that are due."""
        self.attempt(lambda: self.services.queries.get_session(self.pick(index)))

    @rule(name=st.sampled_from(["sessions", "analytics"]), back=st.integers(0, 5))
    def catch_up_part_way(self, name: str, back: int) -> None:
        """Batches that end anywhere: the next catch-up continues from there."""
        head = self.services.sessions.recorder.max_notification_id() or 0
        self.services.projector(name).catch_up(max(head - back, 0))

    @rule()
    def rebuild(self) -> None:
        """(b) A rebuild of every projection gives exactly the rows it replaces."""
        self.services.worker.catch_up()
        before = all_rows(self.services)
        generations = [p.status().generation for p in self.services.projectors]
        for projector in self.services.projectors:
            projector.rebuild()
        assert [p.status().generation for p in self.services.projectors] == [
            g + 1 for g in generations
        ]
        after = all_rows(self.services)
        assert after == before, differences(before, after)

    # Invariants -------------------------------------------------------------------------

    @invariant()
    def views_agree_with_aggregates_and_history(self) -> None:
        self.services.worker.catch_up()
        head = self.services.sessions.recorder.max_notification_id() or 0
        assert all(p.status().position == head for p in self.services.projectors)
        aggregates: dict[int, Session] = {
            session_id: self.services.sessions.repository.get(aggregate_uuid(session_id))
            for session_id in self.sessions
        }
        check_read_sessions(self.services, aggregates, self.clock.now())
        check_analytics(self.services, aggregates)


def check_read_sessions(services: Services, aggregates: dict[int, Session], now: Any) -> None:
    """(a) Every read-model row, decoded, is its aggregate's state."""
    codec = SessionStateCodec(services.sessions.mapper)
    rows = {
        int(k): row for k, row in records(services.views, "read_sessions", "session_id").items()
    }
    assert set(rows) == set(aggregates)
    for session_id, row in rows.items():
        aggregate = aggregates[session_id]
        projected = codec.decode(session_id, int(row["version"]), row["state"])
        assert row["version"] == aggregate.version
        assert row["updated_at"] == stored_time(services.views, aggregate.modified_on)
        assert session_document(projected, services.directory, now) == session_document(
            aggregate, services.directory, now
        )
        assert vars(projected) == vars(aggregate)


def check_analytics(services: Services, aggregates: dict[int, Session]) -> None:
    """(c) The analytics views say what the stored events say."""
    db = services.views
    events = session_events(services)

    def at(moment: datetime | None) -> Any:
        return stored_time(db, moment)

    sessions: dict[str, dict[str, Any]] = {}
    sign_ins: dict[str, dict[str, Any]] = {}
    attempts: dict[str, dict[str, Any]] = {}
    switches: list[tuple[int, Any]] = []
    activations: Counter[tuple[str, str]] = Counter()
    for position, event in events:
        kind = type(event).__name__
        session_id = str(event.originator_id.int)
        session = sessions.setdefault(session_id, {"events": 0, "started_at": at(event.timestamp)})
        session["events"] += 1
        session["last_change_at"] = at(event.timestamp)
        if kind == "SignInAttempted":
            attempts[str(event.attempt_id)] = {
                "session_id": session_id,
                "user_id": None if event.user_id is None else str(event.user_id),
                "attempted_at": at(event.timestamp),
                "completed_at": None,
                "failed_at": None,
                "failed_verifications": 0,
                "method": event.method,
            }
        elif kind == "SignInAttemptFailed":
            attempts[str(event.attempt_id)]["failed_verifications"] += 1
            if event.terminal:
                attempts[str(event.attempt_id)]["failed_at"] = at(event.timestamp)
        elif kind == "SignInCompleted":
            attempts[str(event.attempt_id)].update(
                completed_at=at(event.timestamp), user_id=str(event.user_id)
            )
            sign_ins[str(event.sign_in_id)] = {
                "session_id": session_id,
                "user_id": str(event.user_id),
                "started_at": at(event.timestamp),
                "expires_at": at(event.expires_at),
                "ended_at": None,
                "end_reason": None,
            }
        elif kind == "ActiveSignInSwitched":
            switches.append((position, event))
        elif kind == "MembershipActivated":
            what = (
                "workspace_activations" if event.workspace_membership_id is not None
                else "organization_activations" if event.organization_membership_id is not None
                else "clears"
            )  # fmt: skip
            activations[(day_of(event.timestamp), what)] += 1
        if kind in END_REASONS:
            ended = event.sign_in_ids if kind == "SignedOutOfAll" else [event.sign_in_id]
            for sign_in_id in ended:
                sign_ins[str(sign_in_id)].update(
                    ended_at=at(event.timestamp), end_reason=END_REASONS[kind]
                )

    # One row per session, with its event count and active account.
    found_sessions = records(db, "analytics_sessions", "session_id")
    assert set(found_sessions) == {str(s) for s in aggregates} == set(sessions)
    for session_id, expected in sessions.items():
        row = found_sessions[session_id]
        aggregate = aggregates[int(session_id)]
        active = aggregate.active_sign_in_id
        assert {k: row[k] for k in expected} == expected, session_id
        assert row["active_sign_in_id"] == (None if active is None else str(active))
        active_user = next((s.user_id for s in aggregate.sign_ins if s.id == active), None)
        assert row["active_user_id"] == (None if active_user is None else str(active_user))

    # One row per SignInCompleted, ended the way the history ended it.
    found_sign_ins = records(db, "analytics_sign_ins", "sign_in_id")
    assert set(found_sign_ins) == set(sign_ins)
    for sign_in_id, expected in sign_ins.items():
        row = found_sign_ins[sign_in_id]
        assert {k: row[k] for k in expected} == expected, sign_in_id

    # One row per attempt; the daily funnel adds them up by the day they started.
    found_attempts = records(db, "analytics_sign_in_attempts", "attempt_id")
    assert set(found_attempts) == set(attempts)
    for attempt_id, expected in attempts.items():
        row = found_attempts[attempt_id]
        assert {k: row[k] for k in expected} == expected, attempt_id
    funnel: Counter[tuple[str, str, str]] = Counter()
    for attempt in attempts.values():
        key = (_day_of_stored(attempt["attempted_at"]), attempt["method"])
        funnel[(*key, "attempted")] += 1
        funnel[(*key, "completed")] += attempt["completed_at"] is not None
        funnel[(*key, "failed")] += attempt["failed_at"] is not None
        funnel[(*key, "failed_verifications")] += attempt["failed_verifications"]
    daily_attempts: Counter[tuple[str, str, str]] = Counter()
    for row in dicts(db, "analytics_daily_sign_in_attempts"):
        for column in ("attempted", "completed", "failed", "failed_verifications"):
            daily_attempts[(str(row["day"]), row["method"], column)] += int(row[column])
    assert +daily_attempts == +funnel

    # Switches: one row per ActiveSignInSwitched; the daily view counts them all.
    found_switches = records(db, "analytics_switches", "position")
    assert set(found_switches) == {position for position, _ in switches}
    for position, event in switches:
        row = found_switches[position]
        assert row["to_sign_in_id"] == str(event.sign_in_id)
        assert row["from_sign_in_id"] == (
            None if event.from_sign_in_id is None else str(event.from_sign_in_id)
        )
        assert row["user_id"] == sign_ins[str(event.sign_in_id)]["user_id"]
    daily_switches = dicts(db, "analytics_daily_switches")
    assert sum(int(r["switches"]) for r in daily_switches) == len(switches)
    per_day = Counter(day_of(event.timestamp) for _, event in switches)
    assert {str(r["day"]): int(r["switches"]) for r in daily_switches} == dict(per_day)
    for r in daily_switches:
        on_day = [e for _, e in switches if day_of(e.timestamp) == str(r["day"])]
        assert int(r["distinct_sessions"]) == len({e.originator_id for e in on_day})

    # Membership activations by kind and day.
    daily_activations: Counter[tuple[str, str]] = Counter()
    for row in dicts(db, "analytics_daily_membership_activations"):
        for column in ("organization_activations", "workspace_activations", "clears"):
            daily_activations[(str(row["day"]), column)] += int(row[column])
    assert +daily_activations == +activations
    assert count(db, "analytics_membership_activations") == sum(activations.values())

    # The current state: sign-ins not ended (all within their lifetime by the database's clock).
    state = records(db, "analytics_session_state", "session_id")
    assert set(state) == set(sessions)
    for session_id, row in state.items():
        not_ended = [s for s in sign_ins.values() if s["session_id"] == session_id]
        assert row["live_sign_ins"] == sum(s["ended_at"] is None for s in not_ended)
        assert row["active_sign_in_id"] == found_sessions[session_id]["active_sign_in_id"]


def _day_of_stored(value: Any) -> str:
    """The day of a time as a table returned it (RFC 3339 text or a datetime)."""
    return value[:10] if isinstance(value, str) else day_of(value)


MACHINES: dict[str, tuple[type[ProjectionMachine], int, int]] = {
    # store: (machine, examples, steps per example), see tests.helpers.run_machine
    "memory": (ProjectionMachine, 30, 30),
    "sqlite": (ProjectionMachine, 30, 25),
    "postgres": (ProjectionMachine, 10, 30),
}


@each_store(MACHINES)
def test_projections_agree_with_aggregates_history_and_rebuilds(store: str) -> None:
    run_machine(store, MACHINES)
