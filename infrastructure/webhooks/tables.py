"""The webhook tables, beside the projections (in the views database).

Times are integer milliseconds since the epoch, the same on both stores, so scheduling
compares numbers. A message is stored once, with the exact body every delivery of it sends;
a delivery is one message for one endpoint (at most one row each: exactly-once creation);
each attempt of a delivery is a row of its own.
"""

from __future__ import annotations

from datetime import UTC, datetime

from infrastructure.sql import SqlDatabase

ENDPOINTS = "webhook_endpoints"
MESSAGES = "webhook_messages"
DELIVERIES = "webhook_deliveries"
ATTEMPTS = "webhook_attempts"
SESSIONS = "webhook_sessions"
SIGN_INS = "webhook_sign_ins"


def to_ms(moment: datetime) -> int:
    """Milliseconds since the epoch."""
    return int(moment.timestamp() * 1000)


def from_ms(value: int | None) -> datetime | None:
    """The UTC time of a millisecond count (None stays None)."""
    return None if value is None else moment(value)


def moment(value: int) -> datetime:
    """The UTC time of a millisecond count."""
    return datetime.fromtimestamp(int(value) / 1000, UTC)


def create_statements(db: SqlDatabase) -> list[str]:
    """DDL of every webhook table and index (IF NOT EXISTS)."""
    t = db.table
    index = "CREATE INDEX IF NOT EXISTS"
    return [
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
