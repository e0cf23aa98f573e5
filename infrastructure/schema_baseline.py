"""Migrations 1 and 2: the tables as the releases before versioned migrations made them.

Every statement says ``IF NOT EXISTS``, so on an install made by those releases (tables
there, no ``schema_version`` table yet) this migration changes nothing and is only
recorded; on a new install it creates everything. Later migrations are plain DDL.
Projection tables are not here: they are rebuilt per generation by the projection engine
(see :mod:`infrastructure.projections.engine`), and eventsourcing creates its own tables.
"""

from __future__ import annotations

from infrastructure.audit.chain import CHAIN_TABLE
from infrastructure.sql import SqlDatabase
from infrastructure.webhooks.tables import (
    ATTEMPTS,
    DELIVERIES,
    ENDPOINTS,
    MESSAGES,
    SESSIONS,
    SIGN_INS,
)

_DIRECTORY = (
    "CREATE TABLE IF NOT EXISTS {users} (id TEXT PRIMARY KEY, email TEXT NOT NULL UNIQUE,"
    " first_name TEXT NOT NULL, last_name TEXT NOT NULL, password_hash TEXT,"
    " created_at TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS {organizations} (id TEXT PRIMARY KEY, name TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS {workspaces} (id TEXT PRIMARY KEY,"
    " organization_id TEXT NOT NULL, name TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS {organization_memberships} (id TEXT PRIMARY KEY,"
    " organization_id TEXT NOT NULL, user_id TEXT NOT NULL, role_ids TEXT NOT NULL,"
    " UNIQUE (user_id, organization_id))",
    "CREATE TABLE IF NOT EXISTS {workspace_memberships} (id TEXT PRIMARY KEY,"
    " workspace_id TEXT NOT NULL, organization_membership_id TEXT NOT NULL,"
    " role_ids TEXT NOT NULL, UNIQUE (organization_membership_id, workspace_id))",
)
_ROLES = (  # once for organization roles, once for workspace roles
    "CREATE TABLE IF NOT EXISTS {t} (id TEXT PRIMARY KEY, {owner} TEXT NOT NULL,"
    " position INTEGER NOT NULL, name TEXT NOT NULL, permissions TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS directory_roles_by_{owner} ON {t} ({owner})",
)
_ROLE_OWNERS = {"organization_roles": "organization_id", "workspace_roles": "workspace_id"}
_DIRECTORY_TABLES = ("users", "organizations", "workspaces", "organization_memberships",
                     "workspace_memberships")  # fmt: skip


def store_baseline(db: SqlDatabase) -> list[str]:
    """The tables of the event store's database, in either dialect."""
    postgres = db.dialect == "postgres"
    timestamp = "TIMESTAMPTZ" if postgres else "TEXT"
    real = "DOUBLE PRECISION" if postgres else "REAL"
    position = "BIGINT" if postgres else "INTEGER"
    t = db.table
    return [
        f"CREATE TABLE IF NOT EXISTS {t('server_secrets')} "
        "(name TEXT PRIMARY KEY, value TEXT NOT NULL)",
        *_directory(db),
        f"CREATE TABLE IF NOT EXISTS {t('signing_keys')} (kid TEXT PRIMARY KEY, "
        "private_pem TEXT NOT NULL, public_jwk TEXT NOT NULL, "
        f"created_at {timestamp} NOT NULL, retired_at {timestamp})",
        f"CREATE TABLE IF NOT EXISTS {t('rate_limit_events')} "
        f"(bucket TEXT NOT NULL, at {real} NOT NULL)",
        f"CREATE INDEX IF NOT EXISTS ix_rate_limit_events ON {t('rate_limit_events')} (bucket, at)",
        f"CREATE TABLE IF NOT EXISTS {t('pending_sign_ups')} (attempt_id TEXT PRIMARY KEY, "
        "user_id TEXT NOT NULL, email TEXT NOT NULL, first_name TEXT NOT NULL, "
        "last_name TEXT NOT NULL, password_hash TEXT NOT NULL, "
        f"expires_at {timestamp} NOT NULL)",
        f"CREATE TABLE IF NOT EXISTS {t(CHAIN_TABLE)} (position {position} PRIMARY KEY, "
        "originator_id TEXT NOT NULL, originator_version BIGINT NOT NULL, "
        "event_hash TEXT NOT NULL, session_hash TEXT NOT NULL, global_hash TEXT NOT NULL)",
        f"CREATE INDEX IF NOT EXISTS {CHAIN_TABLE}_originator_idx "
        f"ON {t(CHAIN_TABLE)} (originator_id, originator_version)",
    ]


def _directory(db: SqlDatabase) -> list[str]:
    names = {name: db.table(f"directory_{name}") for name in _DIRECTORY_TABLES}
    roles = [
        ddl.format(t=db.table(f"directory_{table}"), owner=owner)
        for table, owner in _ROLE_OWNERS.items()
        for ddl in _ROLES
    ]
    return [ddl.format_map(names) for ddl in _DIRECTORY] + roles


def views_baseline(db: SqlDatabase) -> list[str]:
    """The tables of the views database besides projection generations: the projections'
    positions and the webhook tables."""
    t = db.table
    index = "CREATE INDEX IF NOT EXISTS"
    return [
        f"CREATE TABLE IF NOT EXISTS {t('projection_state')} (name TEXT PRIMARY KEY, "
        "generation INTEGER NOT NULL, position BIGINT NOT NULL, "
        "version INTEGER NOT NULL DEFAULT 0)",
        f"CREATE TABLE IF NOT EXISTS {t(ENDPOINTS)} (id BIGINT PRIMARY KEY, url TEXT NOT NULL, "
        "event_types TEXT NOT NULL, enabled INTEGER NOT NULL, created_at BIGINT NOT NULL, "
        "since_position BIGINT NOT NULL, secret TEXT NOT NULL, previous_secret TEXT, "
        "previous_until BIGINT, disabled_at BIGINT, disabled_reason TEXT, "
        "failure_streak INTEGER NOT NULL DEFAULT 0, streak_since BIGINT, "
        "attempts_total BIGINT NOT NULL DEFAULT 0, failures_total BIGINT NOT NULL DEFAULT 0, "
        "delivered_total BIGINT NOT NULL DEFAULT 0)",
        f"CREATE TABLE IF NOT EXISTS {t(MESSAGES)} (id TEXT PRIMARY KEY, "
        "position BIGINT NOT NULL, type TEXT NOT NULL, occurred_at BIGINT NOT NULL, "
        "body TEXT NOT NULL)",
        f"{index} webhook_messages_position ON {t(MESSAGES)} (position)",
        f"{index} webhook_messages_occurred ON {t(MESSAGES)} (occurred_at)",
        f"CREATE TABLE IF NOT EXISTS {t(DELIVERIES)} (endpoint_id BIGINT NOT NULL, "
        "message_id TEXT NOT NULL, position BIGINT NOT NULL, status TEXT NOT NULL, "
        "attempts INTEGER NOT NULL DEFAULT 0, tries INTEGER NOT NULL DEFAULT 0, "
        "created_at BIGINT NOT NULL, next_attempt_at BIGINT NOT NULL, finished_at BIGINT, "
        "PRIMARY KEY (endpoint_id, message_id))",
        f"{index} webhook_deliveries_due ON {t(DELIVERIES)} (endpoint_id, status, next_attempt_at)",
        f"CREATE TABLE IF NOT EXISTS {t(ATTEMPTS)} (endpoint_id BIGINT NOT NULL, "
        "message_id TEXT NOT NULL, seq INTEGER NOT NULL, attempted_at BIGINT NOT NULL, "
        "address TEXT, status_code INTEGER, latency_ms INTEGER NOT NULL, outcome TEXT NOT NULL, "
        "error TEXT, response TEXT, next_attempt_at BIGINT, "
        "PRIMARY KEY (endpoint_id, message_id, seq))",
        f"CREATE TABLE IF NOT EXISTS {t(SESSIONS)} (session_id BIGINT PRIMARY KEY, "
        "created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL, active_sign_in_id BIGINT)",
        f"CREATE TABLE IF NOT EXISTS {t(SIGN_INS)} (id BIGINT PRIMARY KEY, "
        "session_id BIGINT NOT NULL, user_id BIGINT NOT NULL, method TEXT NOT NULL, "
        "created_at BIGINT NOT NULL, expires_at BIGINT NOT NULL, "
        "organization_membership_id BIGINT, workspace_membership_id BIGINT)",
        f"{index} webhook_sign_ins_session ON {t(SIGN_INS)} (session_id)",
    ]
