"""The composition root: settings in, a running set of services out, and a way to close them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import psycopg
from eventsourcing.persistence import InfrastructureFactory, PersistenceError
from eventsourcing.utils import Environment

from application.authentication import Authenticator, random_code
from application.cookie_tokens import CookieTokens
from application.errors import StoreUnavailable
from application.me import MyAccount
from application.policy import SessionPolicy
from application.ports import Clock, Digester, IdGenerator
from application.session_commands import SessionCommands
from application.session_queries import SessionQueries
from application.sessions import SessionsApp
from application.sign_in_limits import AuthPolicy
from application.unit_of_work import UnitOfWork
from application.user_contexts import UserContexts
from infrastructure.audit.chain import Chain
from infrastructure.audit.sealing import Sealing
from infrastructure.audit.trail import AuditTrail
from infrastructure.clock import SystemClock
from infrastructure.deployment import token_issuer
from infrastructure.directory_cache import ProfileCachingDirectory
from infrastructure.directory_loading import DirectoryLoader
from infrastructure.directory_store import SqlDirectory
from infrastructure.ids import SnowflakeGenerator
from infrastructure.mail import LogTransport, Outbox, SmtpSettings, SmtpTransport
from infrastructure.migrations import migrate
from infrastructure.multihost import replace_all_after_failover, target_writable
from infrastructure.outage import harden_datastore
from infrastructure.passwords import Argon2Passwords
from infrastructure.pending_sign_ups import SqlPendingSignUps
from infrastructure.persistence import (
    TARGET_SESSION_ATTRS,
    StoreConfig,
    StoreConfigError,
    open_sql_database,
    sql_database_for,
    store_config,
)
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
from infrastructure.sql import SqlDatabase
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
        self.outbox.close()
        if self.replica_reads is not None:
            self.replica_reads.close()
        if self.views is not self.sql:
            self.views.close()
        self.sessions.close()


def build_services(
    settings: Settings,
    *,
    clock: Clock | None = None,
    passwords: Argon2Passwords | None = None,
    new_code: Callable[[], str] = random_code,
) -> Services:
    """Open the store, create missing tables and secrets, and wire the applications."""
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
        _check_reachable(config)
        factory = InfrastructureFactory.construct(Environment(SessionsApp.name, env))
        _prepare(settings, getattr(factory, "datastore", None), env.get(TARGET_SESSION_ATTRS, ""))
        sql = sql_database_for(factory)
        migrate(sql, "store")
        secrets = ServerSecrets(sql)
        directory = SqlDirectory(sql)
        the_clock = clock or SystemClock()
        keys = SigningKeys(sql, the_clock, timedelta(seconds=settings.token_lifetime_seconds))
        keys.ensure_active_key()
        views = _views_database(settings, sql)
        replica = _replica_reads(settings)
        sessions = SessionsApp(env, factory=factory)
        if isinstance(sessions.recorder, Sealing) and settings.audit_key:
            sessions.recorder.chain = Chain(settings.audit_key.get_secret_value().encode())
        ids = SnowflakeGenerator()
        digester = HmacDigester(secrets.get_or_create("digest-key"))
        policy = _session_policy(settings)
        tokens = CookieTokens(sessions.repository, digester)
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
        queries = SessionQueries(
            sessions,
            SessionReadModel(
                views,
                codec,
                projectors[0],
                replica,
                events_table=_events_beside(views, factory, sessions),
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
        outbox = _outbox(settings)
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
            mailer=outbox,
            hasher=passwords,
            pending=pending,
            accounts=directory,
            policy=_auth_policy(settings),
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
        me=MyAccount(
            queries,
            commands,
            SqlUserSignIns(views, projectors[2]),
            directory=directory,
            clock=the_clock,
            policy=policy,
        ),
        webhooks=webhooks,
        clock=the_clock,
        ids=ids,
        digester=digester,
        policy=policy,
    )


def _outbox(settings: Settings) -> Outbox:
    if not settings.smtp_host:
        return Outbox(LogTransport(), settings.smtp_from)
    smtp = SmtpSettings(
        host=settings.smtp_host,
        port=settings.smtp_port,
        username=settings.smtp_username,
        password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
        sender=settings.smtp_from,
        starttls=settings.smtp_starttls,
    )
    return Outbox(SmtpTransport(smtp), settings.smtp_from)


def _events_beside(views: SqlDatabase, factory: Any, sessions: SessionsApp) -> str | None:
    """The event store's table if the views live in its database (one read for both)."""
    if getattr(factory, "datastore", None) is not views.datastore:
        return None
    table: str | None = getattr(sessions.recorder, "events_table_name", None)
    return table


def _rendering_directory(
    settings: Settings, sql: SqlDatabase, directory: SqlDirectory
) -> SqlDirectory:
    """The directory rendering reads: user profiles cached for a few seconds (not what
    sign-in reads, not memberships or permissions)."""
    if not settings.directory_cache_seconds:
        return directory
    return ProfileCachingDirectory(sql, settings.directory_cache_seconds)


def _session_policy(settings: Settings) -> SessionPolicy:
    return SessionPolicy(
        max_sign_ins=settings.max_sign_ins,
        sign_in_lifetime=timedelta(seconds=settings.sign_in_lifetime_seconds),
        attempt_lifetime=timedelta(seconds=settings.sign_in_attempt_lifetime_seconds),
        command_retries=settings.command_retries,
        idle_timeout=(
            timedelta(seconds=settings.sign_in_idle_timeout_seconds)
            if settings.sign_in_idle_timeout_seconds
            else None
        ),
        activity_resolution=timedelta(seconds=settings.activity_resolution_seconds),
        token_lifetime=timedelta(seconds=settings.token_lifetime_seconds),
        token_issuer=token_issuer(settings),
    )


def _auth_policy(settings: Settings) -> AuthPolicy:
    return AuthPolicy(
        code_lifetime=timedelta(seconds=settings.code_lifetime_seconds),
        window_seconds=settings.rate_limit_window_seconds,
        sign_ins_per_address=settings.rate_limit_sign_ins_per_address,
        failures_per_account_and_address=settings.rate_limit_failures_per_account_and_address,
        account_failures_before_cool_down=settings.rate_limit_account_failures_before_cool_down,
        cool_down_max_seconds=settings.rate_limit_cool_down_max_seconds,
        codes_per_attempt=settings.rate_limit_codes_per_attempt,
        codes_per_address=settings.rate_limit_codes_per_address,
        verifications_per_address=settings.rate_limit_verifications_per_address,
        sign_ups_per_address=settings.rate_limit_sign_ups_per_address,
    )


def _views_database(settings: Settings, sql: SqlDatabase) -> SqlDatabase:
    if not settings.views_database_url:
        return sql
    return _other_database(settings, settings.views_database_url, "views database", True)


def _replica_reads(settings: Settings) -> ReplicaReads | None:
    if not settings.read_database_url:
        return None
    # Not checked at start: reads fall back to the primary while no replica answers.
    replica = _other_database(settings, settings.read_database_url, "read database", False)
    return ReplicaReads(replica, settings.read_replica_wait_seconds)


def _other_database(settings: Settings, url: str, what: str, check: bool) -> SqlDatabase:
    """A database of its own, besides the event store's, from another URL setting."""
    try:
        config = store_config(settings, url)
    except StoreConfigError as error:
        raise StoreUnavailable(f"{what}: {error}") from None
    if check:
        _check_reachable(config)
    database = open_sql_database(config)
    _prepare(settings, database.datastore, config.env.get(TARGET_SESSION_ATTRS, ""))
    return database


def _prepare(settings: Settings, datastore: object, session_attrs: str) -> None:
    """Before a PostgreSQL pool's first connection: which node it wants (a cluster URL's
    ``target_session_attrs``), bounded waits, and, on a cluster, replacing every dead
    connection together after a failover."""
    target_writable(datastore, session_attrs)
    harden_datastore(
        datastore, settings.database_timeout_seconds, settings.postgres_statement_timeout_seconds
    )
    if session_attrs:
        replace_all_after_failover(datastore)


def _check_reachable(config: StoreConfig) -> None:
    """Fail fast, with the server's own reason, when PostgreSQL does not answer."""
    if config.kind != "postgres":
        return
    env = config.env
    options: dict[str, Any] = {
        "dbname": env["POSTGRES_DBNAME"],
        "host": env["POSTGRES_HOST"],
        "port": env["POSTGRES_PORT"],
        "user": env["POSTGRES_USER"],
        "password": env["POSTGRES_PASSWORD"] or None,
        "connect_timeout": 5,
    }
    if env[TARGET_SESSION_ATTRS]:
        options["target_session_attrs"] = env[TARGET_SESSION_ATTRS]
    with psycopg.connect(**options):
        pass
