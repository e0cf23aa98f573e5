"""The composition root: settings in, a running set of services out, and a way to close them."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import psycopg
from eventsourcing.persistence import InfrastructureFactory, PersistenceError
from eventsourcing.utils import Environment

from application.authentication import Authenticator
from application.authenticator_base import random_code
from application.cookie_tokens import CookieTokens
from application.errors import StoreUnavailable
from application.me import MyAccount
from application.policy import SessionPolicy
from application.ports import Clock, Digester, IdGenerator, Mailer
from application.session_commands import SessionCommands
from application.session_queries import SessionQueries
from application.sessions import SessionsApp
from application.unit_of_work import UnitOfWork
from application.user_contexts import UserContexts
from infrastructure.aggregate_heads import AggregateHeads
from infrastructure.async_reads import AsyncReads, async_reads_for
from infrastructure.audit.chain import Chain
from infrastructure.audit.following import LogFollower
from infrastructure.audit.recorders import SealingPostgresApplicationRecorder
from infrastructure.audit.sealing import Sealing
from infrastructure.audit.trail import AuditTrail
from infrastructure.clock import SystemClock
from infrastructure.databases import check_reachable, prepare_pool, replica_reads, views_database
from infrastructure.deployment import allowed_origins
from infrastructure.directory_cache import ProfileCachingDirectory
from infrastructure.directory_loading import DirectoryLoader
from infrastructure.directory_store import SqlDirectory
from infrastructure.ids import SnowflakeGenerator
from infrastructure.mail import Outbox
from infrastructure.migrations import migrate
from infrastructure.passwords import Argon2Passwords
from infrastructure.pending_sign_ups import SqlPendingSignUps
from infrastructure.persistence import (
    TARGET_SESSION_ATTRS,
    StoreConfigError,
    sql_database_for,
    store_config,
)
from infrastructure.policies_from_settings import auth_policy_for, outbox_for, session_policy_for
from infrastructure.projections.analytics import AnalyticsProjection
from infrastructure.projections.engine import Projector
from infrastructure.projections.lease import WorkerLease
from infrastructure.projections.replica_reads import ReplicaReads
from infrastructure.projections.session_view import (
    SessionReadModel,
    SessionStateCodec,
    SessionView,
)
from infrastructure.projections.user_sign_ins import SqlUserSignIns, UserSignInsView
from infrastructure.projections.worker import ProjectionWorker
from infrastructure.rate_limits import SqlRateLimiter
from infrastructure.secrets import HmacDigester, ServerSecrets
from infrastructure.settings import Settings
from infrastructure.signing_keys import SigningKeys
from infrastructure.sql import LocalReads, SqlDatabase
from infrastructure.webhooks.service import WebhookService


@dataclass
class Services:
    """Everything the API and the CLI use, built once per process."""

    settings: Settings
    sessions: SessionsApp
    tokens: CookieTokens
    commands: SessionCommands
    queries: SessionQueries
    directory: SqlDirectory
    directory_loader: DirectoryLoader
    sql: SqlDatabase
    views: SqlDatabase
    projectors: list[Projector]
    worker: ProjectionWorker
    keys: SigningKeys
    auth: Authenticator
    outbox: Outbox
    audit: AuditTrail
    me: MyAccount
    webhooks: WebhookService
    clock: Clock
    ids: IdGenerator
    digester: Digester
    policy: SessionPolicy
    replica_reads: ReplicaReads | None = None
    # Opened and closed by the app's lifespan, on its event loop (infrastructure.async_reads).
    async_reads: AsyncReads | None = None
    # SQLite reads made on the event loop (infrastructure.sql.LocalReads), closed with these.
    local_reads: LocalReads | None = None
    # Started by a serving process's lifespan (PostgreSQL; see infrastructure.audit.following).
    follower: LogFollower | None = None

    @functools.cached_property
    def allowed_origins(self) -> frozenset[str]:
        """:func:`infrastructure.deployment.allowed_origins` of the settings, worked out once
        (every state-changing request asks)."""
        return allowed_origins(self.settings)

    def projector(self, name: str) -> Projector:
        """The projector called ``name`` (KeyError if there is none)."""
        for projector in self.projectors:
            if projector.name == name:
                return projector
        raise KeyError(name)

    def close(self) -> None:
        """Stop the workers and the outbox, and release connections."""
        self.webhooks.stop()
        self.worker.stop()
        if self.follower is not None:
            self.follower.stop()
        self.outbox.close()
        if self.replica_reads is not None:
            self.replica_reads.close()
        if self.local_reads is not None:
            self.local_reads.close()
        if self.views is not self.sql:
            self.views.close()
        self.sessions.close()


def build_services(
    settings: Settings,
    *,
    clock: Clock | None = None,
    passwords: Argon2Passwords | None = None,
    new_code: Callable[[], str] = random_code,
    mailer: Mailer | None = None,
) -> Services:
    """Open the store, create missing tables and secrets, and wire the applications
    (``mailer``: where codes go instead of the settings' outbox, for tests in process)."""
    try:
        config = store_config(settings)
    except StoreConfigError as error:
        raise StoreUnavailable(str(error)) from None
    env = {**config.env, "IS_SNAPSHOTTING_ENABLED": "y"}
    if settings.aggregate_cache_size:
        env["AGGREGATE_CACHE_MAXSIZE"] = str(settings.aggregate_cache_size)
    passwords = passwords or Argon2Passwords()
    factory: InfrastructureFactory[Any] | None = None
    try:
        check_reachable(config)
        factory = InfrastructureFactory.construct(Environment(SessionsApp.name, env))
        prepare_pool(
            settings, getattr(factory, "datastore", None), env.get(TARGET_SESSION_ATTRS, "")
        )
        sql = sql_database_for(factory)
        migrate(sql, "store")
        secrets = ServerSecrets(sql)
        directory = SqlDirectory(sql)
        the_clock = clock or SystemClock()
        keys = SigningKeys(sql, the_clock, timedelta(seconds=settings.token_lifetime_seconds))
        keys.ensure_active_key()
        views = views_database(settings, sql)
        replica = replica_reads(settings)
        sessions = SessionsApp(env, factory=factory)
        if isinstance(sessions.recorder, Sealing) and settings.audit_key:
            sessions.recorder.chain = Chain(settings.audit_key.get_secret_value().encode())
        ids = SnowflakeGenerator()
        digester = HmacDigester(secrets.get_or_create("digest-key"))
        policy = session_policy_for(settings)
        heads = AggregateHeads(sessions, sql)  # the event store's own database
        tokens = CookieTokens(sessions.repository, digester, heads)
        shown = _rendering_directory(settings, sql, directory)
        work = UnitOfWork(sessions, the_clock, shown, policy)
        contexts = UserContexts(sessions, directory)
        commands = SessionCommands(work, tokens, contexts, directory, ids)
        codec = SessionStateCodec(sessions.mapper)
        payload = sessions.context_mapper().payload
        projectors = [
            Projector(sessions, views, SessionView(codec)),
            Projector(sessions, views, AnalyticsProjection()),
            Projector(sessions, views, UserSignInsView(payload)),
        ]
        for projector in projectors:
            projector.ensure()
        # Queries come after the projections they read.
        async_reads = async_reads_for(views.datastore, settings.database_timeout_seconds)
        local_reads = views.local_reads()
        signing_kid = keys.active_kid_query() if views is sql else None  # keys beside views
        queries = SessionQueries(
            sessions,
            SessionReadModel(
                views, codec, projectors[0], heads, replica, async_reads, signing_kid, local_reads
            ),
            commands,
            directory=shown,
            signer=keys,
            clock=the_clock,
            policy=policy,
        )
        webhooks = WebhookService(settings, sessions, views, payload)
        webhooks.ensure()
        limiter = SqlRateLimiter(sql, the_clock, enabled=settings.rate_limits)
        pending = SqlPendingSignUps(sql, the_clock)
        outbox = outbox_for(settings)
        auth = Authenticator(
            work,
            tokens=tokens,
            contexts=contexts,
            directory=directory,
            passwords=passwords,
            digester=digester,
            ids=ids,
            clock=the_clock,
            session_policy=policy,
            limiter=limiter,
            mailer=mailer or outbox,
            hasher=passwords,
            pending=pending,
            accounts=directory,
            policy=auth_policy_for(settings),
            new_code=new_code,
        )
    except (PersistenceError, OSError, psycopg.Error) as error:
        if factory is not None:
            factory.close()
        reason = " ".join(str(error).split()) or type(error).__name__
        raise StoreUnavailable(f"cannot open {config.description}: {reason}") from None
    return Services(
        settings=settings,
        sessions=sessions,
        tokens=tokens,
        commands=commands,
        queries=queries,
        directory=directory,
        directory_loader=DirectoryLoader(sql, passwords),
        sql=sql,
        views=views,
        projectors=projectors,
        worker=ProjectionWorker(sessions, projectors, WorkerLease(views.datastore)),
        keys=keys,
        auth=auth,
        outbox=outbox,
        audit=AuditTrail(sessions, sql, views, replica, directory=directory),
        replica_reads=replica,
        async_reads=async_reads,
        local_reads=local_reads,
        me=MyAccount(
            queries,
            commands,
            SqlUserSignIns(views, projectors[2]),
            directory=directory,
            clock=the_clock,
            policy=policy,
        ),
        webhooks=webhooks,
        follower=_follower(settings, sessions),
        clock=the_clock,
        ids=ids,
        digester=digester,
        policy=policy,
    )


def _follower(settings: Settings, sessions: SessionsApp) -> LogFollower | None:
    """The follower of other processes' appends, where the store has one."""
    recorder = sessions.recorder
    if not settings.follow_writes or not isinstance(recorder, SealingPostgresApplicationRecorder):
        return None
    return LogFollower(recorder, sessions.follow)


def _rendering_directory(
    settings: Settings, sql: SqlDatabase, directory: SqlDirectory
) -> SqlDirectory:
    """The directory rendering reads: user profiles cached for a few seconds (not what
    sign-in reads, not memberships or permissions)."""
    if not settings.directory_cache_seconds:
        return directory
    return ProfileCachingDirectory(sql, settings.directory_cache_seconds)
