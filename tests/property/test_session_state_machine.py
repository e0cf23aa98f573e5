"""Stateful property test: SessionsApp's public commands against the plain model.

Hypothesis drives starts, sign-ins (right and wrong passwords), switches to valid and invalid
sign-ins, sign-outs, organization and workspace switches (valid, foreign, malformed, empty),
clock moves past expiry and restarts, on each store; after every step every invariant of
BEHAVIOUR.md is checked, and so is a replay of the stored events.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from contextlib import ExitStack
from datetime import datetime, timedelta
from functools import partial
from typing import Any, ClassVar, TypeVar

import jwt
from eventsourcing.application import AggregateNotFoundError, Repository
from hypothesis import event
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from application.errors import Unauthorized
from application.read_model import SessionDocument, session_document
from application.sessions import SessionsApp
from domain.errors import (
    InvalidCredentials,
    InvalidSignInId,
    MaxSignInsReached,
    NoActiveSignIn,
    NotAMember,
    SessionLedgerError,
    UserAlreadySignedIn,
)
from domain.ids import aggregate_uuid
from domain.session import Session
from domain.user_context import UserContext, user_context_uuid
from infrastructure.clock import SettableClock
from infrastructure.container import Services
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
from tests.property.session_model import (
    ACTIVITY_RESOLUTION,
    ATTEMPT_LIFETIME,
    IDLE_TIMEOUT,
    LIFETIME,
    NO_CONTEXT,
    ORG_MEMBERSHIPS,
    WS_MEMBERSHIPS,
    Context,
    ModelAttempt,
    ModelSession,
    ModelSignIn,
    context_belongs_to,
    organization_context,
    workspace_context,
)

MAX_SIGN_INS = 2  # small, so that the limit is hit often
ACCOUNTS = [ALICE, BOB, CAROL, ("nobody@example.com", "nobody-password", "")]
MALFORMED = [
    "", "0", "-1", "+1", " 1", "1 ", "01", "1_0", "1.0", "abc", "0x10", "\uff11\uff12",
    "18446744073709551616", "99999999999999999999",
]  # fmt: skip
CLOCK_STEPS = [  # small steps more often than large ones
    timedelta(seconds=1),
    timedelta(seconds=1),
    timedelta(minutes=10),
    timedelta(minutes=10),
    timedelta(minutes=10),
    timedelta(minutes=31),  # past an attempt's lifetime
    timedelta(minutes=59),
    LIFETIME,  # past a sign-in's lifetime
    timedelta(hours=25),  # past an attempt's retention too
]
SIGNED_IN_AT_START = st.tuples(  # mostly full sessions, so that switches have somewhere to go
    st.permutations(ACCOUNTS[:3]), st.sampled_from([0, 1, 2, 2, 2])
).map(lambda drawn: list(drawn[0][: drawn[1]]))
E = TypeVar("E", bound=SessionLedgerError)


def raises(error: type[E], command: Callable[[], object], *, count: bool = True) -> E:
    """Run ``command``, which must raise ``error`` (and nothing else)."""
    try:
        command()
    except error as raised:
        if count:
            event(f"refused: {error.__name__}")
        return raised
    raise AssertionError(f"expected {error.__name__}")


def unparseable_ids() -> st.SearchStrategy[str]:
    """Ids that are not canonical decimals, or name nothing."""
    return st.sampled_from(MALFORMED) | st.integers(1, 2**64 - 1).map(str)


def mostly(valid: list[str]) -> st.SearchStrategy[str]:
    """One of ``valid`` three times in four, otherwise an id that names nothing."""
    return st.one_of(*[st.sampled_from(valid)] * 3, unparseable_ids())


class SessionMachine(RuleBasedStateMachine):
    """Up to three sessions on one store, checked against ModelSession after every step.

    Sign-ins last an hour, or 45 minutes without use; reading a session notes its active
    sign-in as in use every 15 minutes at most. Rate limits are off.
    """

    store: ClassVar[str] = "memory"

    def __init__(self) -> None:
        super().__init__()
        self.clock = SettableClock()
        self.resources = ExitStack()  # the store, removed last
        self.running = ExitStack()  # the services on it
        self.url = self.resources.enter_context(fresh_store(self.store))
        self.services = self._open_services(load_demo=True)
        self.sessions: list[ModelSession] = []
        self.contexts: dict[str, Context] = {}  # what each user activated last
        self.seen_sign_in_ids: set[str] = set()

    # Plumbing ---------------------------------------------------------------------------

    def _open_services(self, load_demo: bool) -> Services:
        return self.running.enter_context(
            services_for(
                self.url,
                clock=self.clock,
                load_demo=load_demo,
                max_sign_ins=MAX_SIGN_INS,
                sign_in_lifetime_seconds=int(LIFETIME.total_seconds()),
                sign_in_attempt_lifetime_seconds=int(ATTEMPT_LIFETIME.total_seconds()),
                sign_in_idle_timeout_seconds=int(IDLE_TIMEOUT.total_seconds()),
                activity_resolution_seconds=int(ACTIVITY_RESOLUTION.total_seconds()),
                rate_limits=False,  # limits are not what this test is about
                postgres_pool_size=2,
            )
        )

    def teardown(self) -> None:
        self.running.close()
        self.resources.close()

    @property
    def app(self) -> SessionsApp:
        return self.services.sessions

    def pick(self, index: int) -> ModelSession:
        return self.sessions[index % len(self.sessions)]

    def agrees(self, model: ModelSession, document: SessionDocument, outcome: str) -> None:
        """The document a command returned is the one the model expects."""
        event(outcome)
        check_document_invariants(document)
        assert document.model_dump(mode="json") == model.document(self.clock.now())

    def notice_expiries(self, model: ModelSession) -> None:
        if model.notice_expiries(self.clock.now()):
            event("expiry noticed")

    # Rules ------------------------------------------------------------------------------

    @initialize(accounts=SIGNED_IN_AT_START)
    def first_session(self, accounts: list[tuple[str, str, str]]) -> None:
        self.start_session(accounts)

    @precondition(lambda self: len(self.sessions) < 3)
    @rule(accounts=SIGNED_IN_AT_START)
    def start_session(self, accounts: list[tuple[str, str, str]]) -> None:
        """A new session, with up to the maximum of accounts signed in at once (to start deep)."""
        started = self.services.commands.start_session()
        assert started.new_token is not None
        model = ModelSession(started.document.id, self.clock.now(), started.new_token)
        self.sessions.append(model)
        self.agrees(model, started.document, "started")
        for email, password, user_id in accounts:
            self._sign_in(len(self.sessions) - 1, email, password, user_id)

    @rule(
        index=st.integers(0, 2),
        account=st.sampled_from(ACCOUNTS),
        how=st.sampled_from(["right", "right", "shouted", "wrong", "someone else's"]),
    )
    def sign_in(self, index: int, account: tuple[str, str, str], how: str) -> None:
        email, password, user_id = account
        if how == "shouted":
            email = email.upper()  # emails are case-insensitive
        if how == "wrong":
            password = "wrong-" + password
        if how == "someone else's":
            password = BOB[1] if account == ALICE else ALICE[1]
        right = how in ("right", "shouted") and user_id != ""
        self._sign_in(index, email, password, user_id if right else None)

    def _sign_in(self, index: int, email: str, password: str, user_id: str | None) -> None:
        model, now = self.pick(index), self.clock.now()

        def command() -> Any:
            auth = self.services.auth
            return auth.sign_in_with_password(int(model.id), email, password, model.token)

        self.notice_expiries(model)
        live = model.live(now)
        if user_id is None:
            raises(InvalidCredentials, command)
            model.updated_at = now  # the failed attempt is recorded
            return
        if any(s.user_id == user_id for s in live):
            raises(UserAlreadySignedIn, command)
            return
        if len(live) >= MAX_SIGN_INS:
            raises(MaxSignInsReached, command)
            return
        result = command()
        document = result.document
        assert document.active_signin_id not in self.seen_sign_in_ids
        known_attempts = {a.id for a in model.attempts}
        (attempt,) = [a for a in document.signin_attempts if a.id not in known_attempts]
        model.attempts.append(ModelAttempt(attempt.id, now, now + ATTEMPT_LIFETIME))
        context = self.contexts.get(user_id, NO_CONTEXT)
        sign_in = ModelSignIn(document.active_signin_id, user_id, now, now + LIFETIME, context)
        model.sign_ins.append(sign_in)
        model.active = sign_in.id
        model.updated_at = now
        model.rotate(result.new_token)
        self.seen_sign_in_ids.add(sign_in.id)
        self.agrees(model, document, "signed in")

    @rule(index=st.integers(0, 2), data=st.data())
    def switch_sign_in(self, index: int, data: st.DataObject) -> None:
        model, now = self.pick(index), self.clock.now()
        self.notice_expiries(model)
        live = [s.id for s in model.live(now)]
        others = sorted(self.seen_sign_in_ids - set(live))  # ended, or of other sessions
        choices: st.SearchStrategy[str | None] = unparseable_ids() | st.none()
        if others:
            choices |= st.sampled_from(others)
        if live:  # mostly a real switch, sometimes to the active one
            inactive = [i for i in live if i != model.active] or live
            choices = st.one_of(*[st.sampled_from(inactive)] * 3, st.sampled_from(live), choices)
        raw = data.draw(choices, label="sign_in_id")
        event(f"switch among {len(live)} live")
        if raw not in live:
            raises(
                InvalidSignInId, lambda: self.services.commands.switch_sign_in(int(model.id), raw)
            )
            return
        self._switch(model, raw)

    def _with_active_sign_in(self) -> list[ModelSession]:
        now = self.clock.now()
        return [s for s in self.sessions if s.active_sign_in(now) and s.active not in s.due(now)]

    @precondition(lambda self: self._with_active_sign_in())
    @rule(data=st.data())
    def switch_to_the_active_sign_in(self, data: st.DataObject) -> None:
        model = data.draw(st.sampled_from(self._with_active_sign_in()))
        self.notice_expiries(model)  # of other sign-ins
        before = model.updated_at
        assert model.active is not None
        self._switch(model, model.active)
        assert model.updated_at == before

    def _switch(self, model: ModelSession, raw: str) -> None:
        now = self.clock.now()
        document = self.services.commands.switch_sign_in(int(model.id), raw)
        changed = raw != model.active
        if changed:
            target = next(s for s in model.sign_ins if s.id == raw)
            target.last_active_at = now
            model.active = raw
            model.updated_at = now
        self.agrees(model, document, "switched" if changed else "switched to the active one")

    @rule(index=st.integers(0, 2), everything=st.integers(0, 3), data=st.data())
    def sign_out(self, index: int, everything: int, data: st.DataObject) -> None:
        if everything == 0:
            self._sign_out_of_everything(self.pick(index))
            return
        model, now = self.pick(index), self.clock.now()
        due = model.due(now)  # noticed below, unless the id is refused before loading
        live = [s.id for s in model.live(now) if s.id not in due]
        others = sorted(self.seen_sign_in_ids - set(live))
        choices = unparseable_ids()
        if others:
            choices |= st.sampled_from(others)
        if live:
            choices = st.one_of(*[st.sampled_from(live)] * 3, choices)
        raw = data.draw(choices, label="sign_in_id")

        def command() -> Any:
            return self.services.commands.sign_out(int(model.id), raw, model.token)

        if not raw.isascii() or not raw.isdigit() or raw.startswith("0") or int(raw) >= 2**64:
            raises(InvalidSignInId, command)  # refused before the session is even loaded
            return
        self.notice_expiries(model)
        if raw not in live:
            raises(InvalidSignInId, command)
            return
        result = command()
        model.end([raw], now)
        model.rotate(result.new_token)
        self.agrees(model, result.document, "signed out")

    def _sign_out_of_everything(self, model: ModelSession) -> None:
        now = self.clock.now()
        result = self.services.commands.sign_out(int(model.id), None, model.token)
        self.notice_expiries(model)
        live = [s.id for s in model.live(now)]
        if live:
            model.end(live, now)
            model.rotate(result.new_token)
        else:
            assert result.new_token is None
        self.agrees(model, result.document, f"signed out of {len(live)}")

    @rule(
        index=st.integers(0, 2),
        raw=mostly([ACME, GLOBEX, "", ACME_WEB]),
    )
    def switch_organization(self, index: int, raw: str) -> None:
        self._switch_context(
            index, raw, self.services.commands.switch_organization, organization_context
        )

    @rule(
        index=st.integers(0, 2),
        raw=mostly([ACME_WEB, ACME_DATA, "", ACME]),
    )
    def switch_workspace(self, index: int, raw: str) -> None:
        self._switch_context(index, raw, self.services.commands.switch_workspace, workspace_context)

    def _switch_context(
        self,
        index: int,
        raw: str,
        command: Callable[[int, str], SessionDocument],
        membership: Callable[[str, str], Context | None],
    ) -> None:
        model, now = self.pick(index), self.clock.now()
        self.notice_expiries(model)
        active = model.active_sign_in(now)
        if active is None:
            raises(NoActiveSignIn, lambda: command(int(model.id), raw))
            return
        target = NO_CONTEXT if raw == "" else membership(active.user_id, raw)
        if target is None:
            raises(NotAMember, lambda: command(int(model.id), raw))
            return
        document = command(int(model.id), raw)
        changed = target != active.context
        if changed:
            active.context = target
            active.updated_at = active.last_active_at = model.updated_at = now
        self.contexts[active.user_id] = target
        self.agrees(model, document, f"context {'changed' if changed else 'kept'}")

    @rule(step=st.sampled_from(CLOCK_STEPS))
    def advance_clock(self, step: timedelta) -> None:
        self.clock.advance(step)

    @rule(index=st.integers(0, 2))
    def get_session(self, index: int) -> None:
        model = self.pick(index)
        document = self.services.queries.get_session(int(model.id))
        self.notice_expiries(model)
        noted = model.note_activity(self.clock.now())
        self.agrees(model, document, "got, activity noted" if noted else "got")

    @rule(index=st.integers(0, 2))
    def get_token(self, index: int) -> None:
        """A session token speaks for the active sign-in (and asking for one is using it)."""
        model = self.pick(index)
        self.notice_expiries(model)
        model.note_activity(self.clock.now())
        active = model.active_sign_in(self.clock.now())
        if active is None:
            raises(NoActiveSignIn, partial(self.services.queries.session_token, int(model.id)))
            return
        token, expires_ms, info = self.services.queries.session_token(int(model.id))
        assert info.id == model.id
        claims = jwt.decode(token, options={"verify_signature": False})
        organization, workspace = active.context
        assert (claims["sub"], claims["sid"]) == (active.user_id, model.id)
        assert claims["organization"] == (
            ORG_MEMBERSHIPS[organization]["organization_id"] if organization else None
        )
        assert claims["workspace"] == (
            WS_MEMBERSHIPS[workspace]["workspace_id"] if workspace else None
        )
        assert claims["exp"] * 1000 == expires_ms
        event("token issued")

    # Invariants -------------------------------------------------------------------------

    @invariant()
    def every_session_agrees_with_the_model_and_with_its_replay(self) -> None:
        now = self.clock.now()
        fresh = Repository(event_store=self.app.events, snapshot_store=self.app.snapshots)
        for model in self.sessions:
            aggregate_id = aggregate_uuid(int(model.id))
            state: Session = self.app.repository.get(aggregate_id)
            assert state_of(state, now) == model.state(now)
            document = session_document(state, self.services.directory, now)
            if not model.due(now):  # else the next command records the expiries first
                assert document.model_dump(mode="json") == model.document(now)
            check_session_invariants(state, document, now)
            assert vars(_fold(self.app, aggregate_id)) == vars(state)
            assert vars(fresh.get(aggregate_id)) == vars(state)
            self.services.queries.read_model.catch_up()
            projected = self.services.queries.read_model.session_state(int(model.id))
            assert projected is not None
            assert vars(projected) == vars(state)

    @invariant()
    def every_user_context_is_the_last_one_activated(self) -> None:
        for _, _, user_id in ACCOUNTS[:3]:
            key = user_context_uuid(int(user_id))
            if user_id not in self.contexts:
                raises_not_found(self.app, key)
                continue
            context: UserContext = self.app.repository.get(key)
            organization, workspace = self.contexts[user_id]
            assert (context.organization_membership_id, context.workspace_membership_id) == (
                int(organization) if organization else None,
                int(workspace) if workspace else None,
            )
            assert vars(_fold(self.app, key)) == vars(context)

    @invariant()
    def only_the_latest_token_opens_each_session(self) -> None:
        for model in self.sessions:
            assert self.services.tokens.resolve(model.token) == int(model.id)
            for revoked in model.revoked[-2:]:
                raises(Unauthorized, partial(self.services.tokens.resolve, revoked), count=False)


def check_session_invariants(state: Session, document: SessionDocument, now: datetime) -> None:
    """BEHAVIOUR.md's invariants, on the stored state and on the document it renders."""
    check_document_invariants(document)
    live = state.live_sign_ins(now)
    assert [s.id for s in document.signins] == [str(s.id) for s in live]
    assert state.active_sign_in_id is None or state.active_sign_in_id in [
        s.id for s in state.sign_ins
    ]
    for sign_in in state.sign_ins:
        context = (
            str(sign_in.organization_membership_id) if sign_in.organization_membership_id else None,
            str(sign_in.workspace_membership_id) if sign_in.workspace_membership_id else None,
        )
        assert context_belongs_to(context, str(sign_in.user_id))
    users = [s.user_id for s in live]
    assert len(users) == len(set(users))


def check_document_invariants(document: SessionDocument) -> None:
    """BEHAVIOUR.md's invariants, on a Session document as the service returns it."""
    live_ids = [s.id for s in document.signins]
    assert document.active_signin_id is None or document.active_signin_id in live_ids
    assert document.active_signin is None or document.active_signin.id == document.active_signin_id
    assert all(s.session_id == document.id for s in document.signins)
    for sign_in in document.signins:
        context = (
            sign_in.active_organization_membership_id,
            sign_in.active_workspace_membership_id,
        )
        assert context_belongs_to(context, sign_in.user_id)
    users = [s.user_id for s in document.signins]
    assert len(users) == len(set(users))
    assert len(document.signins) <= MAX_SIGN_INS


def state_of(session: Session, now: datetime) -> dict[str, Any]:
    """The stored state in the shape of ModelSession.state."""
    return {
        "session_id": session.session_id,
        "created_on": session.created_on,
        "modified_on": session.modified_on,
        "active_sign_in_id": session.active_sign_in_id,
        "sign_ins": [
            (
                s.id,
                s.user_id,
                s.created_at,
                s.updated_at,
                s.expires_at,
                s.last_active_at,
                s.organization_membership_id,
                s.workspace_membership_id,
            )
            for s in session.sign_ins
        ],
        "attempts": [
            (a.id, a.created_at, a.expires_at)
            for a in session.attempts
            if not a.failed and a.expires_at > now
        ],
    }


def raises_not_found(app: SessionsApp, key: uuid.UUID) -> None:
    """The aggregate was never saved."""
    try:
        app.repository.get(key)
    except AggregateNotFoundError:
        return
    raise AssertionError(f"{key} should not exist")


def _fold(app: SessionsApp, aggregate_id: uuid.UUID) -> Any:
    """Every stored event applied in order: no cache, no snapshot."""
    aggregate = None
    for domain_event in app.events.get(aggregate_id):
        aggregate = domain_event.mutate(aggregate)  # type: ignore[attr-defined]
    return aggregate


class DurableSessionMachine(SessionMachine):
    """On a durable store the service may also restart between any two steps."""

    @rule()
    def restart(self) -> None:
        """A new process on the same store: nothing cached survives, everything stored does."""
        self.running.close()
        self.services = self._open_services(load_demo=False)


MACHINES: dict[str, tuple[type[SessionMachine], int, int]] = {
    # store: (machine, examples, steps per example); on SQLite and PostgreSQL it restarts
    "memory": (SessionMachine, 80, 30),
    "sqlite": (DurableSessionMachine, 20, 25),
    "postgres": (DurableSessionMachine, 16, 40),
}


@each_store(MACHINES)
def test_the_sessions_app_behaves_like_the_model(store: str) -> None:
    run_machine(store, MACHINES)
