"""The sessions application: load a session, run one command, save, render.

Every command runs through :meth:`SessionsApp._run`, which reloads and retries when another
writer saved the same session first (two tabs switching at once), within a bound, and then
gives up with :class:`~domain.errors.ConcurrentModification` rather than losing an update.
"""

from __future__ import annotations

import contextlib
import logging
import random
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import (
    InfrastructureFactory,
    IntegrityError,
    JSONTranscoder,
    Mapper,
)
from eventsourcing.utils import Environment, EnvType

from application.ports import (
    Clock,
    Digester,
    Directory,
    IdGenerator,
    PasswordVerifier,
    Role,
    SessionReadModel,
    TokenSigner,
)
from application.read_model import SessionDocument, SessionInfo, rfc3339, session_document
from application.request_context import ContextMapper
from application.transcodings import DataclassAsDict
from domain.errors import (
    ConcurrentModification,
    InvalidSignInId,
    NotAMember,
    SessionLedgerError,
    Unauthorized,
)
from domain.ids import aggregate_uuid, parse_id
from domain.session import Session
from domain.tokens import SessionToken
from domain.user_context import UserContext, user_context_uuid
from domain.values import ActiveContext, SignIn, SignInAttempt

logger = logging.getLogger(__name__)

TOKEN_BYTES = 32  # 256 bits; the contract asks for at least 128


@dataclass(frozen=True)
class SessionPolicy:
    """Limits and lifetimes that settings may change."""

    max_sign_ins: int = 5
    sign_in_lifetime: timedelta = timedelta(days=30)
    attempt_lifetime: timedelta = timedelta(minutes=30)
    command_retries: int = 20
    idle_timeout: timedelta | None = timedelta(days=7)
    activity_resolution: timedelta = timedelta(minutes=15)
    token_lifetime: timedelta = timedelta(seconds=60)
    token_issuer: str = "session-ledger"  # noqa: S105 - the JWT "iss" claim, not a secret


@dataclass(frozen=True)
class CommandResult:
    """A session after a command, and the cookie token to send if it changed."""

    document: SessionDocument
    new_token: str | None = None


# An action gets the loaded session and the time, and returns the other aggregates to save
# with it and, optionally, an error to raise once they are saved (a failed sign-in is a fact
# worth recording, and still an error for the caller).
Action = Callable[[Session, datetime], "tuple[list[Aggregate], SessionLedgerError | None]"]


class SessionsApp(Application[UUID]):
    """Event-sourced sessions, their cookie tokens, and users' last chosen context."""

    name = "sessions"
    snapshotting_intervals = {Session: 50}  # noqa: RUF012 - the library's class-level API

    def __init__(
        self,
        env: dict[str, str],
        *,
        clock: Clock,
        ids: IdGenerator,
        directory: Directory,
        digester: Digester,
        passwords: PasswordVerifier,
        policy: SessionPolicy,
        read_model: SessionReadModel,
        signer: TokenSigner,
        factory: InfrastructureFactory[Any] | None = None,
    ) -> None:
        self.read_model = read_model
        self.signer = signer
        self._given_factory = factory
        self.clock = clock
        self.ids = ids
        self.directory = directory
        self.digester = digester
        self.passwords = passwords
        self.policy = policy
        self._session_locks = StripedLocks()
        self._user_locks = StripedLocks()
        self._held = threading.local()
        self._held.locks = []
        super().__init__(env)

    def construct_env(self, name: str, env: EnvType | None = None) -> Environment:
        """Configure only from what we pass, never from stray eventsourcing variables."""
        values = {"IS_SNAPSHOTTING_ENABLED": "y", **dict(env or {})}
        return Environment(name, values)

    def construct_factory(self, env: Environment) -> InfrastructureFactory[Any]:
        """Use the factory the composition root opened (so our tables share its pool)."""
        return self._given_factory or super().construct_factory(env)

    def construct_mapper(self) -> Mapper[UUID]:
        """A mapper that records the current request's context inside each event."""
        return self.factory.mapper(
            transcoder=self.construct_transcoder(), mapper_class=ContextMapper
        )

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        """Also encode the dataclasses that snapshots of sessions hold."""
        super().register_transcodings(transcoder)
        transcoder.register(DataclassAsDict(SignIn, "session_ledger_sign_in"))
        transcoder.register(DataclassAsDict(SignInAttempt, "session_ledger_sign_in_attempt"))

    # Cookie tokens ----------------------------------------------------------------------

    def _token_key(self, token: str) -> UUID:
        return UUID(bytes=self.digester.digest("session-token", token)[:16])

    def _new_token(self, session_id: int, now: datetime) -> tuple[str, SessionToken]:
        token = secrets.token_urlsafe(TOKEN_BYTES)
        return token, SessionToken.issue(self._token_key(token), session_id, now)

    def resolve_token(self, token: str | None) -> int:
        """The session id a cookie token opens, or Unauthorized for anything else."""
        if not token or len(token) > 256 or not token.isascii():
            raise Unauthorized
        try:
            aggregate: Aggregate = self.repository.get(self._token_key(token))
        except AggregateNotFoundError:
            raise Unauthorized from None
        if not isinstance(aggregate, SessionToken) or aggregate.revoked:
            raise Unauthorized
        return aggregate.session_id

    def rotate_token(
        self, session: Session, old_token: str | None, now: datetime
    ) -> tuple[str, list[Aggregate]]:
        """Issue a new cookie token for the session and revoke the one the caller used."""
        token, issued = self._new_token(session.session_id, now)
        changed: list[Aggregate] = [issued]
        if old_token:
            try:
                old: Aggregate | None = self.repository.get(self._token_key(old_token))
            except AggregateNotFoundError:
                old = None
            if isinstance(old, SessionToken) and old.session_id == session.session_id:
                old.revoke("accounts_changed", now)
                changed.append(old)
        return token, changed

    # Commands ---------------------------------------------------------------------------

    def start_session(self) -> CommandResult:
        """Start an anonymous session and issue its first cookie token."""
        for _ in range(self.policy.command_retries):
            now = self.clock.now()
            session = Session.start(self.ids.next_id(), now)
            token, issued = self._new_token(session.session_id, now)
            document = self._respond(session, now)  # before the save, as in :meth:`run`
            try:
                self.save(session, issued)
            except IntegrityError:
                continue  # an id collision: draw again
            return CommandResult(document, token)
        raise ConcurrentModification

    def get_session(self, session_id: int) -> SessionDocument:
        """The session now, from the read model; expiries that are due get recorded first."""
        now = self.clock.now()
        state = self._projected(session_id)
        if state is None or self._needs_writing(state, now):
            return self.run(session_id, self._note_activity).document
        return session_document(state, self.directory, now)

    def _note_activity(self, session: Session, now: datetime) -> tuple[list[Aggregate], None]:
        # Reading the session is what "in use" means; commands record their own times.
        session.note_activity(now, self.policy.activity_resolution)
        return [], None

    def _needs_writing(self, state: Session, now: datetime) -> bool:
        """True if expiries are due or the active sign-in's activity should be noted."""
        if state.due_expiries(now, self.policy.idle_timeout):
            return True
        active = next((s for s in state.sign_ins if s.id == state.active_sign_in_id), None)
        return active is not None and now - active.last_active_at >= self.policy.activity_resolution

    def session_token(self, session_id: int) -> tuple[str, int]:
        """A short-lived signed token for the active sign-in, and its expiry in epoch ms."""
        now = self.clock.now()
        state = self._projected(session_id) or self._load(session_id)
        if self._needs_writing(state, now):
            # Record due expiries (an idle sign-in gets no token) and note the activity:
            # an app that only asks for tokens is in use.
            self.run(session_id, self._note_activity)
            state = self._projected(session_id) or self._load(session_id)
        sign_in = state.active_sign_in(now)
        organizations = self.directory.organization_memberships(
            [sign_in.organization_membership_id] if sign_in.organization_membership_id else []
        )
        organization = organizations.get(sign_in.organization_membership_id or 0)
        workspaces = self.directory.workspace_memberships(
            [sign_in.workspace_membership_id] if sign_in.workspace_membership_id else []
        )
        workspace = workspaces.get(sign_in.workspace_membership_id or 0)
        issued = int(now.timestamp())
        expires = issued + int(self.policy.token_lifetime.total_seconds())
        claims: dict[str, object] = {
            "iss": self.policy.token_issuer,
            "sub": str(sign_in.user_id),
            "sid": str(session_id),
            "sign_in_id": str(sign_in.id),
            "iat": issued,
            "nbf": issued,
            "exp": expires,
            "organization": str(organization.organization_id) if organization else None,
            "workspace": str(workspace.workspace_id) if workspace else None,
            "permissions": {
                "organization": _permissions(organization.roles if organization else ()),
                "workspace": _permissions(workspace.roles if workspace else ()),
            },
        }
        return self.signer.sign(claims), expires * 1000

    def session_info(self, session_id: int) -> SessionInfo:
        """The short form of a session, for envelopes; records nothing."""
        session = self._projected(session_id) or self._load(session_id)
        return SessionInfo(
            id=str(session.session_id),
            created_at=rfc3339(session.created_on),
            updated_at=rfc3339(session.modified_on),
        )

    def switch_sign_in(self, session_id: int, raw_sign_in_id: str | None) -> SessionDocument:
        """Make a live sign-in of this session the active one."""
        sign_in_id = parse_id(raw_sign_in_id)

        def action(session: Session, now: datetime) -> tuple[list[Aggregate], None]:
            session.switch_sign_in(sign_in_id, now)
            return [], None

        return self.run(session_id, action).document

    def sign_out(
        self, session_id: int, raw_sign_in_id: str | None, old_token: str | None
    ) -> CommandResult:
        """End one sign-in (``raw_sign_in_id``) or, when it is None, every sign-in."""
        sign_in_id = parse_id(raw_sign_in_id)
        if raw_sign_in_id is not None and sign_in_id is None:
            raise InvalidSignInId
        issued: list[str] = []

        def action(session: Session, now: datetime) -> tuple[list[Aggregate], None]:
            issued.clear()
            before = len(session.pending_events)
            if sign_in_id is None:
                session.sign_out_all(now)
            else:
                session.sign_out(sign_in_id, now)
            if len(session.pending_events) == before:
                return [], None
            token, tokens = self.rotate_token(session, old_token, now)
            issued.append(token)
            return list(tokens), None

        result = self.run(session_id, action)
        return CommandResult(result.document, issued[0] if issued else None)

    def switch_organization(self, session_id: int, raw_organization_id: str) -> SessionDocument:
        """Activate the active user's membership of an organization; empty clears it."""

        def action(session: Session, now: datetime) -> tuple[list[Aggregate], None]:
            user_id = session.active_sign_in(now).user_id
            if raw_organization_id == "":
                session.activate_organization(None, now)
            else:
                organization_id = parse_id(raw_organization_id)
                membership = (
                    self.directory.organization_membership_of(user_id, organization_id)
                    if organization_id is not None
                    else None
                )
                if membership is None:
                    raise NotAMember
                session.activate_organization(membership, now)
            return self._remember_context(session, user_id, now), None

        return self.run(session_id, action).document

    def switch_workspace(self, session_id: int, raw_workspace_id: str) -> SessionDocument:
        """Activate the active user's membership of a workspace and its parent; empty clears."""

        def action(session: Session, now: datetime) -> tuple[list[Aggregate], None]:
            user_id = session.active_sign_in(now).user_id
            if raw_workspace_id == "":
                session.activate_workspace(None, now)
            else:
                workspace_id = parse_id(raw_workspace_id)
                membership = (
                    self.directory.workspace_membership_of(user_id, workspace_id)
                    if workspace_id is not None
                    else None
                )
                if membership is None:
                    raise NotAMember
                session.activate_workspace(membership, now)
            return self._remember_context(session, user_id, now), None

        return self.run(session_id, action).document

    # Helpers ----------------------------------------------------------------------------

    def _user_context(self, user_id: int) -> UserContext | None:
        try:
            context: Aggregate = self.repository.get(user_context_uuid(user_id))
        except AggregateNotFoundError:
            return None
        return context if isinstance(context, UserContext) else None

    def starting_context(self, user_id: int) -> ActiveContext:
        """The context a new sign-in of ``user_id`` starts with, if the directory still has it."""
        remembered = self._user_context(user_id)
        if remembered is None:
            return ActiveContext()
        wanted = remembered.context
        organizations = self.directory.organization_memberships(
            [wanted.organization_membership_id] if wanted.organization_membership_id else []
        )
        organization = organizations.get(wanted.organization_membership_id or 0)
        if organization is None or organization.user_id != user_id:
            return ActiveContext()
        workspaces = self.directory.workspace_memberships(
            [wanted.workspace_membership_id] if wanted.workspace_membership_id else []
        )
        workspace = workspaces.get(wanted.workspace_membership_id or 0)
        if workspace is None or workspace.organization_membership_id != organization.id:
            return ActiveContext(organization.id, None)
        return wanted

    def _remember_context(self, session: Session, user_id: int, now: datetime) -> list[Aggregate]:
        """The user's context after a successful switch, recorded every time (even when the
        session itself did not change): every switch then writes this one aggregate, so two
        concurrent switches always conflict and retry instead of leaving the session and the
        user's context out of step."""
        sign_in = session.active_sign_in(now)
        chosen = ActiveContext(sign_in.organization_membership_id, sign_in.workspace_membership_id)
        lock = self._user_locks.get(user_id)
        lock.acquire()  # released by _attempt once the save is done
        self._held.locks.append(lock)
        context = self._user_context(user_id) or UserContext.open(user_id, now)
        # Read after the session, the context may already hold a switch of this session that
        # our session read missed; then the session has moved on: start again.
        loaded = session.version - len(session.pending_events)
        if self._load(session.session_id).version != loaded:
            raise _StaleRead
        context.choose(chosen, now)
        return [context]

    def _load(self, session_id: int) -> Session:
        try:
            session: Aggregate = self.repository.get(aggregate_uuid(session_id))
        except AggregateNotFoundError:
            raise Unauthorized from None
        if not isinstance(session, Session):
            raise Unauthorized
        return session

    def _projected(self, session_id: int) -> Session | None:
        """The session as the read model shows it, once the read model has caught up with
        the session's last recorded event (read-your-writes, also across processes)."""
        latest = self.recorder.select_events(aggregate_uuid(session_id), desc=True, limit=1)
        if not latest:
            return None
        written = latest[0].originator_version
        state = self.read_model.session_state(session_id, written)
        if state is None or state.version < written:
            # The projection has not reached a write that was just answered: apply it now
            # rather than wait for the worker.
            self.read_model.catch_up()
            state = self.read_model.session_state(session_id, written)
        return state

    def _respond(self, session: Session, now: datetime) -> SessionDocument:
        """The session right after this command: the state the command saved, which the
        projection folds from the same events with the same ``mutate``. Later reads go
        through :meth:`_projected`, which never answers from behind this write."""
        return session_document(session, self.directory, now)

    def add_sign_in(
        self,
        session: Session,
        attempt_id: int,
        user_id: int,
        old_token: str | None,
        now: datetime,
    ) -> tuple[str, list[Aggregate]]:
        """Complete an attempt for ``user_id``: a new active sign-in and a new cookie token."""
        session.complete_sign_in(
            attempt_id,
            self.ids.next_id(),
            user_id,
            now + self.policy.sign_in_lifetime,
            self.starting_context(user_id),
            self.policy.max_sign_ins,
            now,
        )
        return self.rotate_token(session, old_token, now)

    def run(self, session_id: int, action: Action) -> CommandResult:
        """Load, expire what is due, act, save; on a concurrent write, reload and retry.

        ``action`` returns the other aggregates to save with the session and, optionally,
        an error to raise once they are saved.

        Within this process, commands on one session (and, inside them, writes of one
        user's context) take turns on a lock, so two tabs served by the same process
        queue rather than collide; optimistic retries remain for other processes.
        """
        with self._session_locks.get(session_id):
            for attempt in range(self.policy.command_retries):
                try:
                    result = self._attempt(session_id, action)
                except (IntegrityError, _StaleRead):
                    # Exponential backoff with full jitter, so contenders from other
                    # processes stop arriving together.
                    time.sleep(random.uniform(0, min(0.05, 0.001 * 2**attempt)))
                    continue
                return result
        raise ConcurrentModification

    def _attempt(self, session_id: int, action: Action) -> CommandResult:
        held: list[threading.Lock] = []
        self._held.locks = held
        try:
            session = self._load(session_id)
            now = self.clock.now()
            session.expire_sign_ins(now, self.policy.idle_timeout)
            try:
                others, error = action(session, now)
            except SessionLedgerError:
                self._save_quietly(session)  # the expiries noticed are still facts
                raise
            # The answer is rendered before the save: once the events are committed, the
            # command answers from them without another read that could fail.
            document = self._respond(session, now) if error is None else None
            if session.pending_events or others:
                self.save(session, *others)
            if error is not None:
                raise error
            assert document is not None
            return CommandResult(document)
        finally:
            self._held.locks = []
            for lock in reversed(held):
                lock.release()

    def _save_quietly(self, session: Session) -> None:
        if session.pending_events:
            # Whoever won the race has seen (or will see) the same expiries.
            with contextlib.suppress(IntegrityError):
                self.save(session)


_MASK64 = (1 << 64) - 1


class StripedLocks:
    """A fixed set of locks shared out by key: a key always gets the same lock."""

    def __init__(self, stripes: int = 1024) -> None:
        self._locks = [threading.Lock() for _ in range(stripes)]

    def get(self, key: int) -> threading.Lock:
        """The lock for ``key``."""
        return self._locks[_mix64(key) % len(self._locks)]


def _mix64(key: int) -> int:
    """SplitMix64's finalizer: every bit of ``key`` moves the low bits. Our snowflake ids
    keep a per-millisecond sequence in their low 12 bits, so ``hash(id) % stripes`` (an int
    hashes to itself) put ids drawn in different milliseconds on one lock."""
    z = key & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


class _StaleRead(Exception):
    """Raised inside a command when what it read has already changed; the command reruns."""


def _permissions(roles: Sequence[Role]) -> list[str]:
    """The union of the roles' permissions, in first-seen order."""
    return list(dict.fromkeys(p for role in roles for p in role.permissions))
