"""What the application needs from the outside world, as protocols and plain data."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple, Protocol
from uuid import UUID

from eventsourcing.persistence import IntegrityError, StoredEvent

from domain.session import Session
from domain.values import OrganizationMembershipFact, WorkspaceMembershipFact


class Clock(Protocol):
    """A source of the current time (UTC)."""

    def now(self) -> datetime:
        """The current time."""


class IdGenerator(Protocol):
    """A source of new 64-bit ids."""

    def next_id(self) -> int:
        """A new id."""


class Digester(Protocol):
    """Keyed one-way digests of secrets and identifiers, with the server's secret key."""

    def digest(self, purpose: str, value: str) -> bytes:
        """A keyed digest of ``value``, separated by ``purpose``."""


class PasswordVerifier(Protocol):
    """Checks passwords against stored hashes in constant-ish time."""

    def verify(self, password_hash: str | None, password: str) -> bool:
        """True only if ``password`` matches; with no hash, burns the same time and fails."""


@dataclass(frozen=True)
class Role:
    """A named set of permissions."""

    id: int
    name: str
    permissions: tuple[str, ...]


@dataclass(frozen=True)
class UserProfile:
    """Public profile data of a user."""

    id: int
    email: str
    first_name: str
    last_name: str


@dataclass(frozen=True)
class UserCredentials:
    """A user found by email, with the hash to check a password against."""

    profile: UserProfile
    password_hash: str | None


@dataclass(frozen=True)
class OrganizationMembershipView:
    """An organization membership as sessions show it."""

    id: int
    organization_id: int
    user_id: int
    roles: tuple[Role, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class WorkspaceMembershipView:
    """A workspace membership as sessions show it."""

    id: int
    workspace_id: int
    organization_membership_id: int
    user_id: int
    roles: tuple[Role, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Group:
    """An organization or a workspace (``organization_id`` set) and how many members it has."""

    id: int
    name: str
    member_count: int
    organization_id: int | None = None


GroupsById = dict[str, dict[int, Group]]  # "organizations" / "workspaces" -> id -> group


class Directory(Protocol):
    """Users, organizations, workspaces, roles and memberships (reference data)."""

    def find_user_by_email(self, email: str) -> UserCredentials | None:
        """The user with that email (case-insensitive), or None."""

    def user_profiles(self, user_ids: Iterable[int]) -> dict[int, UserProfile]:
        """Profiles of the users that exist among ``user_ids``."""

    def profiles_in_memory(self, user_ids: Iterable[int]) -> dict[int, UserProfile] | None:
        """What :meth:`user_profiles` would answer for these users, when it would answer
        without a read (every one of them in memory); None when it would read."""

    def organization_membership_of(
        self, user_id: int, organization_id: int
    ) -> OrganizationMembershipFact | None:
        """The user's membership of that organization, or None."""

    def workspace_membership_of(
        self, user_id: int, workspace_id: int
    ) -> WorkspaceMembershipFact | None:
        """The user's membership of that workspace, or None."""

    def organization_memberships(
        self, membership_ids: Iterable[int]
    ) -> dict[int, OrganizationMembershipView]:
        """The organization memberships that exist among the ids, with roles."""

    def workspace_memberships(
        self, membership_ids: Iterable[int]
    ) -> dict[int, WorkspaceMembershipView]:
        """The workspace memberships that exist among the ids, with roles."""

    def user_membership_ids(self, user_id: int) -> tuple[list[int], list[int]]:
        """Ids of the user's organization memberships and workspace memberships."""

    def groups(self, organization_ids: Iterable[int], workspace_ids: Iterable[int]) -> GroupsById:
        """Organizations and workspaces by id, with their names and member counts."""


class Guard(NamedTuple):
    """An aggregate an append relies on without changing it, at the version it must still
    be at when the append commits (e.g. the cookie token a command was authorised by); the
    recorders refuse the append with :class:`StaleGuard` otherwise."""

    originator_id: UUID
    version: int


class StaleGuard(Exception):
    """Raised when an append is refused because an aggregate it was guarded by (a
    :class:`Guard`) is no longer at the version named; nothing of it was recorded. Not an
    answer to a request: whoever guarded the append checks again the careful way."""


class OutOfStep(IntegrityError):
    """Raised when an append does not continue its aggregate as recorded: its first event's
    version is past the last one recorded plus one. The appender's copy is ahead of the
    store (it saw an event that a failover then lost): a conflict whose cure is to read the
    aggregate again from the store, not to fast-forward the copy. Nothing was recorded."""


class AppendsAtOnce(Protocol):
    """A recorder that can append for a caller on an event loop without holding a thread."""

    async def insert_events_at_once(
        self, stored_events: Sequence[StoredEvent], guards: Sequence[Guard]
    ) -> Sequence[int]:
        """Append atomically, refused with IntegrityError (a version taken) or
        :class:`StaleGuard`; the events' positions once committed."""


class AggregateHeads(Protocol):
    """How far an aggregate's history goes, without loading it."""

    def version_of(self, originator_id: UUID) -> int | None:
        """The version of the aggregate's last event, or None if it has none."""


class SessionReadModel(Protocol):
    """The projected sessions the API answers from (see the projections in infrastructure)."""

    def catch_up(self, position: int | None = None) -> None:
        """Reflect the event log up to ``position`` (or its head) before returning."""

    def session_state(self, session_id: int, at_least: int = 0) -> Session | None:
        """The projected session, or None if the read model has not seen it. ``at_least``
        is the version the caller knows was written: a read model that answers from a
        replica waits a bounded time for the replica to reach it, else reads the primary."""

    def state_at_head(self, session_id: int) -> tuple[int, Session | None] | None:
        """The version of the session's last recorded event and its projected state (None if
        not projected yet); None if the session has no events. One read where the read
        model lives beside the event store; two where it cannot see it in one statement
        (another database, a replica: the state then waits for that version)."""

    def state_and_token_at_head(
        self, session_id: int, token: UUID
    ) -> tuple[tuple[int, Session | None] | None, int | None]:
        """:meth:`state_at_head`, and the version of the last event of the cookie token
        aggregate ``token`` (None if it has none), read in the same statement where one
        statement can: the check of a remembered cookie then costs no round trip."""

    @property
    def reads_at_once(self) -> bool:
        """Whether :meth:`state_and_token_at_head_async` can ever answer."""

    async def state_and_token_at_head_async(
        self, session_id: int, token: UUID, *, signing_kid: bool = False
    ) -> HeadRead | None:
        """:meth:`state_and_token_at_head` without a thread, where the read model can (one
        statement, over an async connection, or a local file's read that never waits for a
        writer); None where it cannot. With ``signing_kid``, the same statement also names
        the key that signs tokens now."""


@dataclass(frozen=True)
class HeadRead:
    """A session at its head, read with a cookie token's head (and the signing key's kid)."""

    at_head: tuple[int, Session | None] | None
    token_version: int | None
    signing_kid: str | None = None


@dataclass(frozen=True)
class UserSignIn:
    """A sign-in of a user in some session, as the read model by user keeps it."""

    id: int
    user_id: int
    session_id: int
    created_at: datetime
    expires_at: datetime
    last_active_at: datetime
    user_agent: str
    client_address: str


class UserSignIns(Protocol):
    """Sign-ins that have not ended, by user, across sessions (a projection)."""

    def of_user(self, user_id: int) -> list[UserSignIn]:
        """The user's sign-ins that have not ended, oldest first."""

    def get(self, sign_in_id: int) -> UserSignIn | None:
        """The sign-in, unless it has ended (or never existed)."""


class TokenSigner(Protocol):
    """Signs session tokens (JWTs) with the service's current key."""

    def sign(self, claims: dict[str, object]) -> str:
        """A compact signed token of ``claims``."""

    def sign_with(self, kid: str, claims: dict[str, object]) -> str | None:
        """``claims`` signed with key ``kid`` if it is at hand in memory; else None."""


@dataclass(frozen=True)
class RequestContext:
    """Where a command came from: kept for rate limits and, with its events, for audits."""

    client_address: str = ""
    user_agent: str = ""
    request_id: str = ""


@dataclass(frozen=True)
class Recent:
    """What a rate-limit key recorded within a window: how many, the oldest and newest
    time (epoch seconds; 0.0 when there is none)."""

    count: int
    oldest: float
    newest: float


class RateLimiter(Protocol):
    """Counts hits per key in sliding windows; raises RateLimited past the limit."""

    def hit(self, key: str, limit: int, window_seconds: int) -> None:
        """Count one hit for ``key``; RateLimited(retry_after) when over ``limit``."""

    def recent(self, key: str, window_seconds: int) -> Recent:
        """What ``key`` recorded in the last ``window_seconds``."""

    def record(self, key: str) -> None:
        """Record one event (a failure) for ``key``."""

    def retry_after(self, moment: float) -> int:
        """Whole seconds from now until the epoch time ``moment`` (at least 1)."""


class Mailer(Protocol):
    """Sends one-time codes by email (queued; never blocks the request on delivery)."""

    def send_code(
        self, to: str, code: str, purpose: str, valid_minutes: int, deliver: bool = True
    ) -> None:
        """Queue an email with ``code`` to ``to``; ``deliver=False`` does the same work and
        discards the message."""


class PasswordHasher(Protocol):
    """Hashes new passwords (argon2id)."""

    def hash(self, password: str) -> str:
        """A salted hash of ``password``."""


@dataclass(frozen=True)
class PendingSignUp:
    """A sign-up waiting for its email to be verified; held outside the event log."""

    attempt_id: int
    user_id: int
    email: str
    first_name: str
    last_name: str
    password_hash: str


class PendingSignUps(Protocol):
    """Sign-up details (and the password hash) until the email is verified."""

    def put(self, pending: PendingSignUp, expires_at: datetime) -> None:
        """Keep ``pending`` until ``expires_at``."""

    def get(self, attempt_id: int) -> PendingSignUp | None:
        """The pending sign-up of that attempt, if any."""

    def delete(self, attempt_id: int) -> None:
        """Forget it (after completion)."""


class AccountCreator(Protocol):
    """Creates users in the directory."""

    def create_user(
        self, user_id: int, email: str, first_name: str, last_name: str, password_hash: str | None
    ) -> UserProfile:
        """Create the user; DuplicateEmail if the email is taken."""
