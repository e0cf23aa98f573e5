"""The composition root: settings in, a running set of services out, and a way to close them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from eventsourcing.persistence import PersistenceError

from application.ports import Clock
from application.sessions import SessionPolicy, SessionsApp
from infrastructure.clock import SystemClock
from infrastructure.directory_store import SqlDirectory
from infrastructure.ids import SnowflakeGenerator
from infrastructure.passwords import Argon2Passwords
from infrastructure.persistence import StoreConfigError, sql_database_for, store_config
from infrastructure.secrets import HmacDigester, ServerSecrets
from infrastructure.settings import Settings
from infrastructure.sql import SqlDatabase


class StoreUnavailable(RuntimeError):
    """Raised when the configured store cannot be opened; the message is one printable line."""


@dataclass
class Services:
    """Everything the API and the CLI use, built once per process."""

    settings: Settings
    sessions: SessionsApp
    directory: SqlDirectory
    sql: SqlDatabase

    def close(self) -> None:
        """Release connections."""
        self.sessions.close()


def build_services(
    settings: Settings,
    *,
    clock: Clock | None = None,
    passwords: Argon2Passwords | None = None,
) -> Services:
    """Open the store, create missing tables and secrets, and wire the applications."""
    try:
        config = store_config(settings)
    except StoreConfigError as error:
        raise StoreUnavailable(str(error)) from None
    env = dict(config.env)
    if settings.aggregate_cache_size:
        env["AGGREGATE_CACHE_MAXSIZE"] = str(settings.aggregate_cache_size)
    passwords = passwords or Argon2Passwords()
    sessions: SessionsApp | None = None
    try:
        # The directory must exist before the app, which needs it; the app's factory owns
        # the pool, so build the app with a late-bound directory.
        sessions = SessionsApp(
            env,
            clock=clock or SystemClock(),
            ids=SnowflakeGenerator(),
            directory=_Unbound(),  # type: ignore[arg-type]
            digester=HmacDigester(b""),
            passwords=passwords,
            policy=SessionPolicy(
                max_sign_ins=settings.max_sign_ins,
                sign_in_lifetime=timedelta(seconds=settings.sign_in_lifetime_seconds),
                attempt_lifetime=timedelta(seconds=settings.sign_in_attempt_lifetime_seconds),
                command_retries=settings.command_retries,
            ),
        )
        sql = sql_database_for(sessions.factory)
        secrets = ServerSecrets(sql)
        secrets.create_table()
        directory = SqlDirectory(sql, passwords)
        directory.create_tables()
        sessions.directory = directory
        sessions.digester = HmacDigester(secrets.get_or_create("digest-key"))
    except (PersistenceError, OSError) as error:
        if sessions is not None:
            sessions.close()
        reason = " ".join(str(error).split()) or type(error).__name__
        raise StoreUnavailable(f"cannot open {config.description}: {reason}") from None
    return Services(settings=settings, sessions=sessions, directory=directory, sql=sql)


class _Unbound:
    """Placeholder until the directory is wired; any use before then is a bug."""

    def __getattr__(self, name: str) -> object:
        raise RuntimeError("directory used before it was wired")
