"""Service settings, read from ``SESSION_LEDGER_*`` environment variables."""

from __future__ import annotations

from pydantic import Field, field_validator
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
    run_projections: bool = Field(
        default=True, description="Run the projection worker inside `serve`"
    )
    max_sign_ins: int = Field(default=5, ge=1, le=100)
    sign_in_lifetime_seconds: int = Field(default=30 * 24 * 3600, ge=60)
    sign_in_attempt_lifetime_seconds: int = Field(default=30 * 60, ge=60)
    cookie_secure: bool = True
    token_lifetime_seconds: int = Field(default=60, ge=10, le=3600)
    token_issuer: str = Field(default="session-ledger", min_length=1)
    postgres_pool_size: int = Field(default=10, ge=1)
    postgres_lock_timeout_ms: int = Field(default=10_000, ge=0)
    aggregate_cache_size: int = Field(default=10_000, ge=0)
    command_retries: int = Field(default=20, ge=1)

    @field_validator("database_url", "views_database_url")
    @classmethod
    def _known_scheme(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("sqlite://", "memory://", "postgresql://", "postgres://")):
            msg = "must start with sqlite://, memory://, postgresql:// or postgres://"
            raise ValueError(msg)
        return value
