"""SessionsApp scenarios, run unchanged on memory, SQLite and PostgreSQL.

Each test reads as a story: given a session (and accounts signed in to it), when a command
runs, then the document it returns, the stored events and a replay of them all agree.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any
from uuid import UUID

import jwt
import pytest
from eventsourcing.application import Repository

from application.authentication import Authenticator
from application.errors import Unauthorized
from application.read_model import SessionDocument, session_document
from application.session_commands import CommandResult
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
from tests.helpers import ACME, ACME_DATA, ACME_WEB, ALICE, BOB, CAROL, GLOBEX, services_for

User = tuple[str, str, str]

# Membership ids of the demo directory (infrastructure/demo/demo-directory.json).
ALICE_ACME, ALICE_GLOBEX = "600000000000000001", "600000000000000002"
BOB_ACME = "600000000000000003"
ALICE_ACME_WEB, ALICE_ACME_DATA = "700000000000000001", "700000000000000002"
LIFETIME = timedelta(hours=1)


@pytest.fixture
def clock() -> SettableClock:
    """The services' clock; only tests move it."""
    return SettableClock()


@pytest.fixture
def services(database_url: str, clock: SettableClock) -> Iterator[Services]:
    """Real services on each store, with one-hour sign-ins."""
    with services_for(
        database_url,
        clock=clock,
        sign_in_lifetime_seconds=int(LIFETIME.total_seconds()),
        rate_limits=False,  # limits are not what these tests are about
    ) as built:
        yield built


@pytest.fixture
def app(services: Services) -> Services:
    """The sessions application under test: its commands, queries, tokens and store."""
    return services


@pytest.fixture
def auth(services: Services) -> Authenticator:
    """How accounts enter its sessions."""
    return services.auth


def sign_in(auth: Authenticator, started: CommandResult, *users: User) -> CommandResult:
    """Sign ``users`` in, in order, each with the cookie token the previous step issued."""
    result = started
    session_id = int(started.document.id)
    for email, password, _ in users:
        token = result.new_token
        result = auth.sign_in_with_password(session_id, email, password, token)
        assert result.new_token is not None
    return result


def sign_in_ids(document: SessionDocument) -> dict[str, str]:
    """Live sign-in ids by user id."""
    return {s.user_id: s.id for s in document.signins}


def event_names(app: Services, session_id: str) -> list[str]:
    """Names of the session's stored events, oldest first."""
    return [type(e).__name__ for e in app.sessions.events.get(aggregate_uuid(int(session_id)))]


def replayed(app: Services, aggregate_id: UUID) -> Any:
    """The aggregate folded from every stored event, with no cache and no snapshot."""
    aggregate = None
    for domain_event in app.sessions.events.get(aggregate_id):
        aggregate = domain_event.mutate(aggregate)  # type: ignore[attr-defined]
    return aggregate


def context_of(document: SessionDocument) -> tuple[str | None, str | None]:
    """The active sign-in's organization and workspace membership ids."""
    assert document.active_signin is not None
    active = document.active_signin
    return active.active_organization_membership_id, active.active_workspace_membership_id


# Starting a session and resolving its cookie --------------------------------------------


def test_a_new_session_is_anonymous_and_its_token_opens_it(app: Services) -> None:
    started = app.commands.start_session()

    document = started.document
    assert (document.signins, document.active_signin_id, document.active_signin) == ([], None, None)
    assert started.new_token is not None
    assert len(started.new_token) >= 22  # at least 128 bits, base64url
    assert started.new_token != document.id
    assert app.tokens.resolve(started.new_token) == int(document.id)
    assert app.queries.get_session(int(document.id)) == document
    assert event_names(app, document.id) == ["Started"]


@pytest.mark.parametrize("token", [None, "", "not-a-token", "x" * 300, "tökén"])
def test_anything_but_an_issued_token_is_unauthorized(
    auth: Authenticator, app: Services, token: str | None
) -> None:
    app.commands.start_session()
    with pytest.raises(Unauthorized):
        app.tokens.resolve(token)


def test_an_unknown_session_is_unauthorized(auth: Authenticator, app: Services) -> None:
    with pytest.raises(Unauthorized):
        app.queries.get_session(123456789012345678)


# Signing in -------------------------------------------------------------------------------


def test_signing_in_adds_an_active_sign_in_and_rotates_the_token(
    auth: Authenticator, app: Services, clock: SettableClock
) -> None:
    started = app.commands.start_session()
    clock.advance(timedelta(seconds=5))

    result = sign_in(auth, started, ALICE)

    document = result.document
    (alice,) = document.signins
    assert (alice.user_id, alice.session_id) == (ALICE[2], document.id)
    assert alice.user is not None
    assert alice.user.primary_email_address.email == ALICE[0]
    assert document.active_signin_id == alice.id
    assert document.active_signin == alice
    assert alice.created_at == document.updated_at != document.created_at
    (attempt,) = document.signin_attempts
    assert (attempt.method, attempt.completed, attempt.current_step) == ("plain_email", True, None)
    assert result.new_token is not None
    assert app.tokens.resolve(result.new_token) == int(document.id)
    with pytest.raises(Unauthorized):
        app.tokens.resolve(started.new_token)
    assert event_names(app, document.id) == ["Started", "SignInAttempted", "SignInCompleted"]


@pytest.mark.parametrize(
    ("email", "password"),
    [(ALICE[0], "wrong-password"), ("nobody@example.com", ALICE[1]), (ALICE[0], BOB[1])],
)
def test_wrong_credentials_are_recorded_as_a_failed_attempt_without_the_password(
    auth: Authenticator, app: Services, email: str, password: str
) -> None:
    started = app.commands.start_session()
    session_id = int(started.document.id)

    with pytest.raises(InvalidCredentials):
        auth.sign_in_with_password(session_id, email, password, started.new_token)

    document = app.queries.get_session(session_id)
    assert (document.signins, document.signin_attempts, document.active_signin_id) == ([], [], None)
    assert event_names(app, document.id) == ["Started", "SignInAttempted", "SignInAttemptFailed"]
    stored = app.sessions.recorder.select_events(aggregate_uuid(session_id))
    assert all(password.encode() not in event.state for event in stored)
    assert all(email.encode() not in event.state for event in stored)
    assert app.tokens.resolve(started.new_token) == session_id  # nothing changed: no rotation


def test_the_same_user_cannot_sign_in_twice_in_one_session(
    auth: Authenticator, app: Services
) -> None:
    result = sign_in(auth, app.commands.start_session(), ALICE)
    before = event_names(app, result.document.id)

    with pytest.raises(UserAlreadySignedIn):
        sign_in(auth, result, ALICE)

    assert event_names(app, result.document.id) == before


def test_a_session_holds_at_most_the_configured_number_of_sign_ins(clock: SettableClock) -> None:
    with services_for("memory://", clock=clock, max_sign_ins=2, rate_limits=False) as services:
        app, auth = services, services.auth
        result = sign_in(auth, app.commands.start_session(), ALICE, BOB)

        with pytest.raises(MaxSignInsReached):
            sign_in(auth, result, CAROL)

        assert len(app.queries.get_session(int(result.document.id)).signins) == 2


# Switching the active sign-in ---------------------------------------------------------------


def test_switching_makes_another_live_sign_in_active(
    auth: Authenticator, app: Services, clock: SettableClock
) -> None:
    result = sign_in(auth, app.commands.start_session(), ALICE, BOB)
    session_id, ids = int(result.document.id), sign_in_ids(result.document)
    clock.advance(timedelta(minutes=1))

    document = app.commands.switch_sign_in(session_id, ids[ALICE[2]])

    assert document.active_signin_id == ids[ALICE[2]]
    assert document.active_signin is not None
    assert document.active_signin.user_id == ALICE[2]
    assert document.updated_at == document.active_signin.last_active_at != document.created_at
    assert [s.id for s in document.signins] == [ids[ALICE[2]], ids[BOB[2]]]
    assert app.queries.get_session(session_id) == document


def test_switching_to_the_active_sign_in_succeeds_and_records_nothing(
    auth: Authenticator, app: Services, clock: SettableClock
) -> None:
    result = sign_in(auth, app.commands.start_session(), ALICE, BOB)
    before = event_names(app, result.document.id)
    clock.advance(timedelta(minutes=1))

    document = app.commands.switch_sign_in(
        int(result.document.id), result.document.active_signin_id
    )

    assert document == result.document
    assert event_names(app, result.document.id) == before


def test_every_invalid_sign_in_id_gets_one_identical_refusal(
    auth: Authenticator, app: Services
) -> None:
    ours = sign_in(auth, app.commands.start_session(), ALICE, BOB, CAROL)
    theirs = sign_in(auth, app.commands.start_session(), ALICE)
    session_id, ids = int(ours.document.id), sign_in_ids(ours.document)
    signed_out = app.commands.sign_out(session_id, ids[CAROL[2]], ours.new_token)
    before = event_names(app, ours.document.id)
    candidates: list[str | None] = [
        None, "", "0", "-1", "+1", " 1", "1_0", "01", "abc", "18446744073709551616",
        "999999999999999999", str(theirs.document.active_signin_id), ids[CAROL[2]],
        ours.document.id,
    ]  # fmt: skip

    refusals = set()
    for candidate in candidates:
        with pytest.raises(InvalidSignInId) as refused:
            app.commands.switch_sign_in(session_id, candidate)
        refusals.add((type(refused.value), str(refused.value)))

    assert len(refusals) == 1
    assert event_names(app, ours.document.id) == before
    assert app.queries.get_session(session_id) == signed_out.document


def test_a_switch_never_changes_any_sign_ins_organization_or_workspace(
    auth: Authenticator, app: Services
) -> None:
    result = sign_in(auth, app.commands.start_session(), ALICE)
    session_id = int(result.document.id)
    app.commands.switch_workspace(session_id, ACME_DATA)
    result = sign_in(auth, result, BOB)
    app.commands.switch_organization(session_id, ACME)
    ids = sign_in_ids(result.document)

    to_alice = app.commands.switch_sign_in(session_id, ids[ALICE[2]])
    to_bob = app.commands.switch_sign_in(session_id, ids[BOB[2]])

    assert context_of(to_alice) == (ALICE_ACME, ALICE_ACME_DATA)
    assert context_of(to_bob) == (BOB_ACME, None)


# Signing out --------------------------------------------------------------------------------


def test_signing_out_an_inactive_sign_in_keeps_the_active_one(
    auth: Authenticator, app: Services
) -> None:
    result = sign_in(auth, app.commands.start_session(), ALICE, BOB)
    session_id, ids = int(result.document.id), sign_in_ids(result.document)

    out = app.commands.sign_out(session_id, ids[ALICE[2]], result.new_token)

    assert [s.user_id for s in out.document.signins] == [BOB[2]]
    assert out.document.active_signin_id == ids[BOB[2]]
    assert out.new_token is not None
    assert app.tokens.resolve(out.new_token) == session_id
    with pytest.raises(Unauthorized):
        app.tokens.resolve(result.new_token)
    with pytest.raises(InvalidSignInId):
        app.commands.switch_sign_in(session_id, ids[ALICE[2]])
    with pytest.raises(InvalidSignInId):
        app.commands.sign_out(session_id, ids[ALICE[2]], out.new_token)


def test_signing_out_the_active_sign_in_leaves_none_active(
    auth: Authenticator, app: Services
) -> None:
    result = sign_in(auth, app.commands.start_session(), ALICE, BOB)
    session_id, ids = int(result.document.id), sign_in_ids(result.document)

    out = app.commands.sign_out(session_id, ids[BOB[2]], result.new_token)

    assert [s.user_id for s in out.document.signins] == [ALICE[2]]
    assert (out.document.active_signin_id, out.document.active_signin) == (None, None)
    with pytest.raises(NoActiveSignIn):
        app.commands.switch_organization(session_id, ACME)
    assert app.commands.switch_sign_in(session_id, ids[ALICE[2]]).active_signin_id == ids[ALICE[2]]


def test_signing_out_of_everything_keeps_an_anonymous_session(
    auth: Authenticator, app: Services
) -> None:
    result = sign_in(auth, app.commands.start_session(), ALICE, BOB)
    session_id = int(result.document.id)

    out = app.commands.sign_out(session_id, None, result.new_token)

    assert (out.document.signins, out.document.active_signin_id) == ([], None)
    assert out.document.id == result.document.id
    assert out.new_token is not None
    assert app.tokens.resolve(out.new_token) == session_id
    assert event_names(app, out.document.id)[-1] == "SignedOutOfAll"
    again = app.commands.sign_out(session_id, None, out.new_token)
    assert (again.document, again.new_token) == (out.document, None)
    assert event_names(app, out.document.id)[-1] == "SignedOutOfAll"


@pytest.mark.parametrize("raw", ["", "abc", "01", "-5"])
def test_signing_out_a_malformed_id_is_refused_and_ends_nothing(
    auth: Authenticator, app: Services, raw: str
) -> None:
    result = sign_in(auth, app.commands.start_session(), ALICE)

    with pytest.raises(InvalidSignInId):
        app.commands.sign_out(int(result.document.id), raw, result.new_token)

    assert app.queries.get_session(int(result.document.id)) == result.document


# Organizations and workspaces ---------------------------------------------------------------


def test_switching_organization_and_workspace(auth: Authenticator, app: Services) -> None:
    result = sign_in(auth, app.commands.start_session(), ALICE)
    session_id = int(result.document.id)

    assert context_of(result.document) == (None, None)
    assert context_of(app.commands.switch_organization(session_id, ACME)) == (ALICE_ACME, None)
    in_data = app.commands.switch_workspace(session_id, ACME_DATA)
    assert context_of(in_data) == (ALICE_ACME, ALICE_ACME_DATA)
    assert in_data.active_signin is not None
    workspace = in_data.active_signin.active_workspace_membership
    assert workspace is not None
    assert (workspace.workspace_id, workspace.organization_membership_id) == (
        ACME_DATA,
        ALICE_ACME,
    )
    assert [r.name for r in workspace.roles] == ["Viewer"]
    assert context_of(app.commands.switch_organization(session_id, GLOBEX)) == (ALICE_GLOBEX, None)
    assert context_of(app.commands.switch_workspace(session_id, ACME_WEB)) == (
        ALICE_ACME,
        ALICE_ACME_WEB,
    )
    assert context_of(app.commands.switch_organization(session_id, ACME)) == (ALICE_ACME, None)
    app.commands.switch_workspace(session_id, ACME_WEB)
    assert context_of(app.commands.switch_organization(session_id, "")) == (None, None)
    app.commands.switch_workspace(session_id, ACME_WEB)
    assert context_of(app.commands.switch_workspace(session_id, "")) == (None, None)


def test_switching_to_the_current_context_records_nothing(
    auth: Authenticator, app: Services
) -> None:
    result = sign_in(auth, app.commands.start_session(), ALICE)
    session_id = int(result.document.id)
    app.commands.switch_workspace(session_id, ACME_WEB)
    before = event_names(app, result.document.id)

    app.commands.switch_workspace(session_id, ACME_WEB)
    app.commands.switch_workspace(session_id, "")
    app.commands.switch_organization(session_id, "")

    assert event_names(app, result.document.id) == [*before, "MembershipActivated"]


@pytest.mark.parametrize(
    ("user", "command", "raw"),
    [
        (BOB, "organization", GLOBEX),
        (BOB, "workspace", ACME_DATA),
        (CAROL, "organization", ACME),
        (CAROL, "workspace", ACME_WEB),
        (ALICE, "workspace", ACME),
        (ALICE, "organization", ACME_WEB),
        (ALICE, "organization", "0" + ACME),
        (ALICE, "organization", "-" + ACME),
        (ALICE, "workspace", ACME_WEB + " "),
        (ALICE, "workspace", "18446744073709551616"),
        (ALICE, "organization", "acme"),
    ],
)
def test_foreign_or_malformed_ids_are_not_a_membership(
    auth: Authenticator, app: Services, user: User, command: str, raw: str
) -> None:
    result = sign_in(auth, app.commands.start_session(), user)
    session_id = int(result.document.id)
    switch = (
        app.commands.switch_organization
        if command == "organization"
        else app.commands.switch_workspace
    )

    with pytest.raises(NotAMember):
        switch(session_id, raw)

    assert app.queries.get_session(session_id) == result.document


@pytest.mark.parametrize("raw", ["", ACME])
def test_switching_context_needs_an_active_sign_in(app: Services, raw: str) -> None:
    started = app.commands.start_session()
    session_id = int(started.document.id)

    for switch in (app.commands.switch_organization, app.commands.switch_workspace):
        with pytest.raises(NoActiveSignIn):
            switch(session_id, raw)


def test_a_new_sign_in_starts_with_the_context_its_user_activated_last(
    auth: Authenticator, app: Services
) -> None:
    first = sign_in(auth, app.commands.start_session(), ALICE)
    app.commands.switch_workspace(int(first.document.id), ACME_WEB)
    other = sign_in(auth, app.commands.start_session(), ALICE, BOB)
    app.commands.switch_sign_in(int(other.document.id), sign_in_ids(other.document)[ALICE[2]])
    app.commands.switch_organization(int(other.document.id), GLOBEX)

    third = sign_in(auth, app.commands.start_session(), CAROL, ALICE, BOB)

    alice = next(s for s in third.document.signins if s.user_id == ALICE[2])
    bob = next(s for s in third.document.signins if s.user_id == BOB[2])
    carol = next(s for s in third.document.signins if s.user_id == CAROL[2])
    assert (alice.active_organization_membership_id, alice.active_workspace_membership_id) == (
        ALICE_GLOBEX,
        None,
    )
    assert alice.active_organization_membership is not None
    assert alice.active_organization_membership.organization_id == GLOBEX
    assert (bob.active_organization_membership_id, carol.active_organization_membership_id) == (
        None,
        None,
    )
    # The first session's sign-in keeps the workspace it chose.
    assert context_of(app.queries.get_session(int(first.document.id))) == (
        ALICE_ACME,
        ALICE_ACME_WEB,
    )


def test_choosing_the_context_a_sign_in_already_has_still_becomes_the_users_last(
    auth: Authenticator,
    app: Services,
) -> None:
    first = sign_in(auth, app.commands.start_session(), ALICE)
    app.commands.switch_organization(int(first.document.id), ACME)
    second = sign_in(auth, app.commands.start_session(), ALICE)
    app.commands.switch_organization(int(second.document.id), GLOBEX)

    app.commands.switch_organization(int(first.document.id), ACME)  # no change in this session

    third = sign_in(auth, app.commands.start_session(), ALICE)
    assert context_of(third.document) == (ALICE_ACME, None)
    context: UserContext = app.sessions.repository.get(user_context_uuid(int(ALICE[2])))
    assert context.organization_membership_id == int(ALICE_ACME)


# Expiry -------------------------------------------------------------------------------------


def test_expired_sign_ins_vanish_and_are_recorded_when_noticed(
    auth: Authenticator, app: Services, clock: SettableClock
) -> None:
    result = sign_in(auth, app.commands.start_session(), ALICE)
    clock.advance(timedelta(minutes=30))
    result = sign_in(auth, result, BOB)
    session_id, ids = int(result.document.id), sign_in_ids(result.document)
    app.commands.switch_sign_in(session_id, ids[ALICE[2]])
    clock.advance(timedelta(minutes=30))  # Alice's hour is up, Bob has half of his left

    before = event_names(app, result.document.id)
    document = app.queries.get_session(session_id)

    assert [s.user_id for s in document.signins] == [BOB[2]]
    assert document.active_signin_id is None
    assert event_names(app, result.document.id) == [*before, "SignInExpired"]
    *_, expired = app.sessions.events.get(aggregate_uuid(session_id))
    assert expired.sign_in_id == int(ids[ALICE[2]])  # type: ignore[attr-defined]
    assert expired.timestamp == clock.now()  # type: ignore[attr-defined]
    assert document.updated_at != result.document.updated_at
    with pytest.raises(InvalidSignInId):
        app.commands.switch_sign_in(session_id, ids[ALICE[2]])
    assert app.queries.get_session(session_id) == document  # noticed once, recorded once
    assert event_names(app, result.document.id) == [*before, "SignInExpired"]


def test_an_expiry_noticed_by_a_refused_command_is_still_recorded(
    auth: Authenticator, app: Services, clock: SettableClock
) -> None:
    result = sign_in(auth, app.commands.start_session(), ALICE)
    session_id, alice = int(result.document.id), result.document.active_signin_id
    clock.advance(LIFETIME)

    with pytest.raises(InvalidSignInId):
        app.commands.switch_sign_in(session_id, alice)

    assert event_names(app, result.document.id)[-1] == "SignInExpired"
    with pytest.raises(NoActiveSignIn):
        app.commands.switch_organization(session_id, ACME)
    assert event_names(app, result.document.id).count("SignInExpired") == 1


def test_an_expired_user_can_sign_in_again(
    auth: Authenticator, app: Services, clock: SettableClock
) -> None:
    result = sign_in(auth, app.commands.start_session(), ALICE)
    clock.advance(LIFETIME + timedelta(seconds=1))

    again = sign_in(auth, result, ALICE)

    (alice,) = again.document.signins
    assert alice.id != result.document.active_signin_id
    assert again.document.active_signin_id == alice.id


# Idle timeout and session tokens -------------------------------------------------------------

IDLE = timedelta(minutes=30)


@pytest.fixture
def idle_services(database_url: str, clock: SettableClock) -> Iterator[Services]:
    """Services whose sign-ins also end after half an hour without use."""
    with services_for(
        database_url,
        clock=clock,
        sign_in_idle_timeout_seconds=int(IDLE.total_seconds()),
        activity_resolution_seconds=600,
        rate_limits=False,
    ) as built:
        yield built


def test_a_sign_in_idle_past_the_timeout_expires_when_noticed(
    idle_services: Services, clock: SettableClock
) -> None:
    app = idle_services
    result = sign_in(idle_services.auth, app.commands.start_session(), ALICE)
    session_id = int(result.document.id)
    clock.advance(timedelta(minutes=20))
    in_use = app.queries.get_session(session_id)  # reading it is using it
    assert in_use.active_signin is not None
    assert in_use.active_signin.last_active_at == in_use.updated_at != result.document.updated_at
    assert event_names(app, in_use.id)[-1] == "SignInActivityNoted"
    clock.advance(timedelta(minutes=25))  # 45 minutes old, 25 idle: still in use
    assert app.queries.get_session(session_id).active_signin_id == result.document.active_signin_id
    last_active = clock.now()
    clock.advance(IDLE + timedelta(seconds=1))

    document = app.queries.get_session(session_id)

    assert (document.signins, document.active_signin_id) == ([], None)
    *_, expired = app.sessions.events.get(aggregate_uuid(session_id))
    assert type(expired).__name__ == "SignInExpired"
    assert expired.expired_at == last_active + IDLE  # type: ignore[attr-defined]


def test_a_sign_in_idle_past_the_timeout_gets_no_token(
    idle_services: Services, clock: SettableClock
) -> None:
    app = idle_services
    result = sign_in(idle_services.auth, app.commands.start_session(), ALICE)
    clock.advance(IDLE + timedelta(seconds=1))

    with pytest.raises(NoActiveSignIn):
        app.queries.session_token(int(result.document.id))

    assert event_names(app, result.document.id)[-1] == "SignInExpired"


def test_the_session_token_speaks_for_the_active_sign_in(
    auth: Authenticator, app: Services, clock: SettableClock
) -> None:
    started = app.commands.start_session()
    session_id = int(started.document.id)
    with pytest.raises(NoActiveSignIn):
        app.queries.session_token(session_id)
    result = sign_in(auth, started, ALICE, BOB)
    app.commands.switch_sign_in(session_id, sign_in_ids(result.document)[ALICE[2]])
    app.commands.switch_workspace(session_id, ACME_WEB)

    token, expires_ms, info = app.queries.session_token(session_id)
    assert info.id == str(session_id)

    claims = jwt.decode(token, options={"verify_signature": False})
    assert (claims["sub"], claims["sid"]) == (ALICE[2], str(session_id))
    assert (claims["organization"], claims["workspace"]) == (ACME, ACME_WEB)
    assert "organization:admin" in claims["permissions"]["organization"]
    assert "workspace:write" in claims["permissions"]["workspace"]
    assert claims["exp"] * 1000 == expires_ms
    assert claims["exp"] > clock.now().timestamp()


# Restart and replay -------------------------------------------------------------------------


def test_a_restart_keeps_sessions_tokens_and_contexts(
    durable_database_url: str, clock: SettableClock
) -> None:
    with services_for(durable_database_url, clock=clock, rate_limits=False) as services:
        app, auth = services, services.auth
        result = sign_in(auth, app.commands.start_session(), ALICE, BOB)
        session_id = int(result.document.id)
        app.commands.switch_sign_in(session_id, sign_in_ids(result.document)[ALICE[2]])
        before = app.commands.switch_workspace(session_id, ACME_DATA)

    with services_for(durable_database_url, clock=clock, rate_limits=False) as restarted:
        app, auth = restarted, restarted.auth
        assert result.new_token is not None
        assert app.tokens.resolve(result.new_token) == session_id
        assert app.queries.get_session(session_id) == before
        other = sign_in(auth, app.commands.start_session(), ALICE)
        assert context_of(other.document) == (ALICE_ACME, ALICE_ACME_DATA)


def test_replaying_stored_events_gives_every_state_the_app_returned(
    auth: Authenticator, app: Services, services: Services, clock: SettableClock
) -> None:
    started = app.commands.start_session()
    session_id = int(started.document.id)
    aggregate_id = aggregate_uuid(session_id)
    returned: list[tuple[int, SessionDocument, Any]] = []

    def remember(document: SessionDocument) -> None:
        version: int = app.sessions.repository.get(aggregate_id).version
        returned.append((version, document, clock.now()))

    remember(started.document)
    result = started
    for user in (ALICE, BOB, CAROL):
        clock.advance(timedelta(seconds=7))
        result = sign_in(auth, result, user)
        remember(result.document)
    ids = sign_in_ids(result.document)
    steps: list[Callable[[], SessionDocument]] = [
        lambda: app.commands.switch_organization(session_id, ""),
        lambda: app.commands.switch_sign_in(session_id, ids[ALICE[2]]),
        lambda: app.commands.switch_workspace(session_id, ACME_WEB),
        lambda: app.commands.switch_sign_in(session_id, ids[BOB[2]]),
        lambda: app.commands.switch_organization(session_id, ACME),
        lambda: app.commands.sign_out(session_id, ids[CAROL[2]], None).document,
        lambda: app.commands.switch_sign_in(session_id, ids[ALICE[2]]),
        lambda: app.commands.switch_organization(session_id, GLOBEX),
    ]
    for step in steps:
        clock.advance(timedelta(seconds=3))
        remember(step())
    clock.advance(LIFETIME)
    remember(app.queries.get_session(session_id))

    for version, document, at in returned:
        historical: Session = app.sessions.repository.get(aggregate_id, version=version)
        assert session_document(historical, services.directory, at) == document
    folded = replayed(app, aggregate_id)
    current: Session = app.sessions.repository.get(aggregate_id)
    assert isinstance(folded, Session)
    assert vars(folded) == vars(current)
    assert session_document(folded, services.directory, clock.now()) == returned[-1][1]


def test_a_snapshot_rebuilds_the_same_state_as_the_events(
    auth: Authenticator, app: Services, services: Services, clock: SettableClock
) -> None:
    result = sign_in(auth, app.commands.start_session(), ALICE, BOB)
    session_id, ids = int(result.document.id), sign_in_ids(result.document)
    aggregate_id = aggregate_uuid(session_id)
    for turn in range(60):
        clock.advance(timedelta(seconds=1))
        app.commands.switch_sign_in(session_id, ids[(ALICE, BOB)[turn % 2][2]])
    app.commands.switch_workspace(session_id, ACME_WEB)
    document = app.queries.get_session(session_id)

    snapshots = list(app.sessions.snapshots.get(aggregate_id)) if app.sessions.snapshots else []
    fresh = Repository(
        event_store=app.sessions.events, snapshot_store=app.sessions.snapshots
    )  # no cache
    rebuilt: Session = fresh.get(aggregate_id)

    assert [s.originator_version for s in snapshots] == [50]
    assert vars(rebuilt) == vars(replayed(app, aggregate_id))
    assert session_document(rebuilt, services.directory, clock.now()) == document
    at_snapshot: Session = fresh.get(aggregate_id, version=50)
    assert vars(at_snapshot) == vars(_fold_until(app, aggregate_id, 50))


def test_snapshots_taken_where_one_save_crosses_the_interval_hold_that_save(
    auth: Authenticator, app: Services
) -> None:
    # Given a session whose commands record several events at once: each sign-out and
    # sign-in ends or adds a sign-in and rotates its token, so saves cross multiples of the
    # snapshot interval at every offset
    result = sign_in(auth, app.commands.start_session(), ALICE)
    session_id = int(result.document.id)
    aggregate_id = aggregate_uuid(session_id)
    token = result.new_token
    while len(list(app.sessions.events.get(aggregate_id))) < 160:
        signed_out = app.commands.sign_out(session_id, None, token)
        signed_in = auth.sign_in_with_password(session_id, ALICE[0], ALICE[1], signed_out.new_token)
        token = signed_in.new_token

    # Then every snapshot holds exactly the state the events fold to at its version
    assert app.sessions.snapshots is not None
    snapshots = list(app.sessions.snapshots.get(aggregate_id))
    assert len(snapshots) >= 3
    assert any(s.originator_version % 50 for s in snapshots)  # a save that crossed a multiple
    for snapshot in snapshots:
        taken = snapshot.mutate(None)  # type: ignore[attr-defined]
        assert vars(taken) == vars(_fold_until(app, aggregate_id, snapshot.originator_version))
    # and a repository without a cache rebuilds the session from the last one as replay does
    fresh = Repository(event_store=app.sessions.events, snapshot_store=app.sessions.snapshots)
    assert vars(fresh.get(aggregate_id)) == vars(replayed(app, aggregate_id))


def _fold_until(app: Services, aggregate_id: UUID, version: int) -> Any:
    aggregate = None
    for domain_event in app.sessions.events.get(aggregate_id, lte=version):
        aggregate = domain_event.mutate(aggregate)  # type: ignore[attr-defined]
    return aggregate


def test_refused_commands_change_nothing_that_replay_would_see(
    auth: Authenticator, app: Services
) -> None:
    result = sign_in(auth, app.commands.start_session(), ALICE)
    session_id = int(result.document.id)
    refusals: list[tuple[Any, tuple[Any, ...]]] = [
        (app.commands.switch_sign_in, (session_id, "42")),
        (app.commands.switch_organization, (session_id, GLOBEX + "0")),
        (app.commands.switch_workspace, (session_id, "x")),
        (app.commands.sign_out, (session_id, "42", result.new_token)),
    ]
    for command, arguments in refusals:
        with pytest.raises(SessionLedgerError):
            command(*arguments)

    assert vars(replayed(app, aggregate_uuid(session_id))) == vars(
        app.sessions.repository.get(aggregate_uuid(session_id))
    )
    assert app.queries.get_session(session_id) == result.document
