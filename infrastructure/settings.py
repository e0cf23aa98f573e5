"""Service settings, read from ``SESSION_LEDGER_*`` environment variables."""

from __future__ import annotations

import ipaddress
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite:///session-ledger.db"


class Settings(BaseSettings):
    """Everything the service can be configured with; see the README for each setting."""

    model_config = SettingsConfigDict(env_prefix="SESSION_LEDGER_", extra="ignore")

    database_url: str = Field(
        default=DEFAULT_DATABASE_URL,
        description="sqlite:///relative.db, sqlite:////absolute.db, memory:// or postgresql://…",
    )
    views_database_url: str | None = Field(
        default=None,
        description="Where projection tables live; default: the same database as the events",
    )
    read_database_url: str | None = Field(
        default=None,
        description="A replica of the views' database that answers reads once it has caught up",
    )
    read_replica_wait_seconds: float = Field(
        default=0.1, ge=0, le=5, description="How long a read waits for the replica to catch up"
    )
    run_projections: bool = Field(
        default=True, description="Run the projection worker inside `serve`"
    )
    follow_writes: bool = Field(
        default=True,
        description="Follow what other processes append (PostgreSQL), so this process's "
        "cached sessions and chain heads stay current (for `serve --workers N`, several hosts)",
    )
    max_sign_ins: int = Field(default=5, ge=1, le=100)
    sign_in_lifetime_seconds: int = Field(default=30 * 24 * 3600, ge=60)
    sign_in_idle_timeout_seconds: int = Field(
        default=7 * 24 * 3600, ge=0, description="0 turns the idle timeout off"
    )
    activity_resolution_seconds: int = Field(
        default=900, ge=1, description="How often reading a session records the sign-in as in use"
    )
    sign_in_attempt_lifetime_seconds: int = Field(default=30 * 60, ge=60)
    cookie_secure: bool = True
    token_lifetime_seconds: int = Field(default=60, ge=10, le=3600)
    token_issuer: str | None = Field(
        default=None, min_length=1, description="JWT `iss`; default: the public URL's origin"
    )
    code_lifetime_seconds: int = Field(default=600, ge=60, le=3600)
    smtp_host: str | None = None
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_from: str = "session-ledger@localhost"
    smtp_starttls: bool = True
    rate_limits: bool = Field(default=True, description="false turns rate limiting off")
    rate_limit_window_seconds: int = Field(default=600, ge=1)
    rate_limit_sign_ins_per_address: int = Field(default=300, ge=1)
    rate_limit_failures_per_account_and_address: int = Field(default=10, ge=1)
    rate_limit_account_failures_before_cool_down: int = Field(default=20, ge=1)
    rate_limit_cool_down_max_seconds: int = Field(default=900, ge=1)
    rate_limit_codes_per_attempt: int = Field(default=5, ge=1)
    rate_limit_codes_per_address: int = Field(default=100, ge=1)
    rate_limit_verifications_per_address: int = Field(default=300, ge=1)
    rate_limit_sign_ups_per_address: int = Field(default=50, ge=1)
    audit_client_address: Literal["whole", "truncated", "hashed"] = Field(
        default="truncated", description="How client addresses are kept with events"
    )
    audit_key: SecretStr | None = Field(
        default=None, description="HMAC key for the audit chains (kept outside the store)"
    )
    admin_token: SecretStr | None = Field(
        default=None, description="Bearer token that enables the /admin routes"
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="Addresses or CIDR networks of the reverse proxies whose X-Forwarded-For "
        "(and -Proto, -Host) to believe",
    )
    allowed_origins: list[str] = Field(
        default_factory=list, description="Other origins allowed to POST with the cookie"
    )
    public_url: str = Field(
        default="http://127.0.0.1:8000", description="Origin browsers reach this service at"
    )
    frontend_url: str | None = Field(
        default=None, description="Origin of the application's pages; default: the public URL"
    )
    deployment_mode: Literal["production", "staging"] = Field(
        default="production", description="staging: development sessions travel in the URL"
    )
    app_name: str = Field(default="session-ledger", min_length=1, max_length=200)
    ui_settings: dict[str, str] = Field(
        default_factory=dict, description="Overrides of GET /deployment's ui_settings (JSON)"
    )
    cookie_name: Literal["session_id", "__session"] = Field(
        default="session_id", description="The session cookie's name (__session for Wacht SDKs)"
    )
    postgres_pool_size: int = Field(default=10, ge=1)
    postgres_lock_timeout_seconds: int = Field(default=10, ge=0)
    database_timeout_seconds: int = Field(
        default=5,
        ge=1,
        le=60,
        description="Longest wait for the store (connect, pool, SQLite busy) before a 503",
    )
    postgres_statement_timeout_seconds: float = Field(
        default=15.0, ge=0, description="PostgreSQL statement_timeout; 0 turns it off"
    )
    aggregate_cache_size: int = Field(default=10_000, ge=0)
    directory_cache_seconds: float = Field(
        default=10.0,
        ge=0,
        le=3600,
        description="How long rendered sessions may show a user's cached name and email; 0 off",
    )
    command_retries: int = Field(default=20, ge=1)
    # Webhooks (docs/webhooks.md)
    webhook_key: SecretStr | None = Field(
        default=None, description="Encrypts webhook signing secrets; kept outside the store"
    )
    run_webhooks: bool = Field(default=True, description="Deliver webhooks inside `serve`")
    webhook_worker: Literal["process", "thread"] = Field(
        default="process",
        description="`serve` delivers from a child process (its own GIL) or from a thread",
    )
    webhook_allow_private_addresses: bool = Field(
        default=False, description="Allow endpoints on loopback, link-local or private addresses"
    )
    webhook_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    webhook_max_attempts: int = Field(default=15, ge=1, le=100)
    webhook_retry_base_seconds: float = Field(default=5.0, gt=0)
    webhook_retry_max_seconds: float = Field(default=6 * 3600.0, gt=0)
    webhook_disable_after_failures: int = Field(default=50, ge=1)
    webhook_disable_after_seconds: float = Field(default=24 * 3600.0, ge=0)
    webhook_concurrency_per_endpoint: int = Field(default=16, ge=1, le=64)
    webhook_poll_seconds: float = Field(default=1.0, gt=0, le=60)

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for entry in value:
            ipaddress.ip_network(entry.strip(), strict=False)  # ValueError names the bad one
        return [entry.strip() for entry in value]

    @field_validator("public_url", "frontend_url")
    @classmethod
    def _origin(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            msg = "must be an http:// or https:// URL"
            raise ValueError(msg)
        return f"{parts.scheme}://{parts.netloc}".lower()

    @field_validator("database_url", "views_database_url", "read_database_url")
    @classmethod
    def _known_scheme(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("sqlite://", "memory://", "postgresql://", "postgres://")):
            msg = "must start with sqlite://, memory://, postgresql:// or postgres://"
            raise ValueError(msg)
        return value
