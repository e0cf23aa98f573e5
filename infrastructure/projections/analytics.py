"""Analytics: fact tables folded from session events, and SQL views that summarise them.

Every table and view is documented, with example queries, in ``docs/analytics.md``; change
them together. A batch is folded in memory (touched rows loaded once, written once with
``executemany``), which is what makes a rebuild fast.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

from domain.events import END_REASONS
from domain.session import Session
from infrastructure.projections.projection import ProjectedEvent, Projection, Write
from infrastructure.sql import SqlCursor, SqlDatabase, bulk_insert, select_in

Row = dict[str, Any]

# table: (primary key, {column: portable type}); "TS" becomes timestamptz or RFC 3339 text.
TABLES: dict[str, tuple[str, dict[str, str]]] = {
    "analytics_sessions": ("session_id", {
        "session_id": "TEXT", "started_at": "TS", "last_change_at": "TS",
        "active_sign_in_id": "TEXT", "active_user_id": "TEXT", "events": "INTEGER",
    }),
    "analytics_sign_ins": ("sign_in_id", {
        "sign_in_id": "TEXT", "session_id": "TEXT", "user_id": "TEXT", "method": "TEXT",
        "started_at": "TS", "expires_at": "TS", "ended_at": "TS", "end_reason": "TEXT",
    }),
    "analytics_sign_in_attempts": ("attempt_id", {
        "attempt_id": "TEXT", "session_id": "TEXT", "kind": "TEXT", "method": "TEXT",
        "user_id": "TEXT",
        "attempted_at": "TS", "completed_at": "TS", "failed_at": "TS",
        "failed_verifications": "INTEGER",
    }),
    "analytics_switches": ("position", {
        "position": "BIGINT", "switched_at": "TS", "session_id": "TEXT",
        "from_sign_in_id": "TEXT", "to_sign_in_id": "TEXT", "user_id": "TEXT",
    }),
    "analytics_membership_activations": ("position", {
        "position": "BIGINT", "activated_at": "TS", "session_id": "TEXT", "sign_in_id": "TEXT",
        "user_id": "TEXT", "kind": "TEXT", "organization_membership_id": "TEXT",
        "workspace_membership_id": "TEXT",
    }),
}  # fmt: skip

MEMO_LIMIT = 200_000  # rows kept in memory during a rebuild

INDEXES = {
    "analytics_sign_ins": ["user_id", "session_id", "started_at"],
    "analytics_sign_in_attempts": ["attempted_at"],
    "analytics_switches": ["switched_at"],
    "analytics_membership_activations": ["activated_at"],
}


def _id(value: int | None) -> str | None:
    return None if value is None else str(value)


class _Fold:
    """Rows loaded once and changed in memory; kept across a rebuild's batches."""

    def __init__(self, db: SqlDatabase, generation: int) -> None:
        self.db, self.generation = db, generation
        self.rows: dict[str, dict[str, Row]] = {t: {} for t in TABLES}
        self.stored: dict[str, set[str]] = {t: set() for t in TABLES}
        self.touched: dict[str, set[str]] = {t: set() for t in TABLES}
        self.appended: dict[str, list[Row]] = {
            "analytics_switches": [],
            "analytics_membership_activations": [],
        }
        self.cursor: SqlCursor
        self.complete = False  # True: every stored row is in memory, nothing to load

    def size(self) -> int:
        return sum(len(rows) for rows in self.rows.values())

    def row(self, name: str, key: str) -> Row:
        """A row to change in this batch."""
        self.touched[name].add(key)
        return self.rows[name][key]

    def new(self, name: str, key: str, row: Row) -> Row:
        """A row created in this batch."""
        self.rows[name][key] = row
        self.touched[name].add(key)
        return row

    def table(self, name: str) -> str:
        return self.db.table(f"{name}_g{self.generation}")

    def load(self, name: str, keys: Iterable[str]) -> None:
        if self.complete:
            return
        key_column = TABLES[name][0]
        wanted = set(keys) - set(self.rows[name])
        for row in select_in(self.cursor, f"SELECT * FROM {self.table(name)}", key_column, wanted):
            self.rows[name][str(row[key_column])] = dict(row)
            self.stored[name].add(str(row[key_column]))

    def write(self) -> None:
        """Insert new rows in bulk, update changed ones, then forget what was written."""
        for name, keys in self.touched.items():
            key_column, columns = TABLES[name]
            rows = self.rows[name]
            new = [rows[k] for k in keys if k not in self.stored[name]]
            bulk_insert(self.cursor, self.db.dialect, self.table(name), list(columns), new)
            changed = [rows[k] for k in keys if k in self.stored[name]]
            if changed:
                sets = ", ".join(f"{c} = %({c})s" for c in columns if c != key_column)
                self.cursor.executemany(
                    f"UPDATE {self.table(name)} SET {sets} WHERE {key_column} = %({key_column})s",
                    [{c: row.get(c) for c in columns} for row in changed],
                )
            self.stored[name].update(keys)
            keys.clear()
        for name, appended in self.appended.items():
            bulk_insert(
                self.cursor, self.db.dialect, self.table(name), list(TABLES[name][1]), appended
            )
            appended.clear()


class AnalyticsProjection(Projection):
    """Sign-ins, attempts, switches, membership activations and sessions, for SQL."""

    name: ClassVar[str] = "analytics"
    tables: ClassVar[tuple[str, ...]] = tuple(TABLES)
    version: ClassVar[int] = 2  # 2: sign-up attempts, with the attempts' `kind`

    def create_statements(self, db: SqlDatabase, generation: int) -> list[str]:
        """Tables and indexes of one generation."""
        timestamp = "TIMESTAMPTZ" if db.dialect == "postgres" else "TEXT"
        statements = []
        for name, (key, columns) in TABLES.items():
            table = self.physical(db, name, generation)
            body = ", ".join(
                f"{c} {timestamp if t == 'TS' else t}" + (" PRIMARY KEY" if c == key else "")
                for c, t in columns.items()
            )
            statements.append(f"CREATE TABLE IF NOT EXISTS {table} ({body})")
            for column in INDEXES.get(name, []):
                index = f"{name}_g{generation}_{column}_idx"
                statements.append(f"CREATE INDEX IF NOT EXISTS {index} ON {table} ({column})")
        return statements

    def view_statements(self, db: SqlDatabase, generation: int) -> list[tuple[str, str]]:
        """Pass-through views of the tables, then the summaries built on them."""
        views = [(name, f"SELECT * FROM {self.physical(db, name, generation)}") for name in TABLES]
        t = db.table
        if db.dialect == "postgres":
            day = "((%s) AT TIME ZONE 'UTC')::date"
            now = "now()"
        else:
            day = "substr(%s, 1, 10)"
            now = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"
        views += [
            ("analytics_daily_sign_in_attempts",
             f"SELECT {day % 'attempted_at'} AS day, kind, method, count(*) AS attempted, "
             "count(completed_at) AS completed, count(failed_at) AS failed, "
             "sum(failed_verifications) AS failed_verifications "
             f"FROM {t('analytics_sign_in_attempts')} GROUP BY 1, 2, 3"),
            ("analytics_daily_switches",
             f"SELECT {day % 'switched_at'} AS day, count(*) AS switches, "
             "count(DISTINCT session_id) AS distinct_sessions, "
             "count(DISTINCT user_id) AS distinct_users "
             f"FROM {t('analytics_switches')} GROUP BY 1"),
            ("analytics_daily_membership_activations",
             f"SELECT {day % 'activated_at'} AS day, "
             "sum(CASE WHEN kind = 'organization' THEN 1 ELSE 0 END) AS organization_activations, "
             "sum(CASE WHEN kind = 'workspace' THEN 1 ELSE 0 END) AS workspace_activations, "
             "sum(CASE WHEN kind = 'cleared' THEN 1 ELSE 0 END) AS clears, "
             "count(DISTINCT user_id) AS distinct_users "
             f"FROM {t('analytics_membership_activations')} GROUP BY 1"),
            ("analytics_session_state",
             "SELECT s.session_id, s.started_at, "
             "(SELECT count(*) FROM " + t("analytics_sign_ins") + " i "
             f"WHERE i.session_id = s.session_id AND i.ended_at IS NULL AND i.expires_at > {now}) "
             "AS live_sign_ins, s.active_sign_in_id, s.active_user_id, s.last_change_at "
             f"FROM {t('analytics_sessions')} s"),
        ]  # fmt: skip
        return views

    def apply(self, write: Write, batch: Sequence[ProjectedEvent]) -> None:
        """Fold a batch of session events into the fact tables."""
        events = [p for p in batch if isinstance(p.event, Session.Event)]
        if not events:
            return
        memo = write.memo
        fold: _Fold = memo.get("fold") or _Fold(write.db, write.generation)
        memo["fold"] = fold
        fold.cursor = write.cursor
        fold.complete = bool(memo.get("complete"))
        fold.load("analytics_sessions", {str(p.event.originator_id.int) for p in events})
        fold.load("analytics_sign_ins", _sign_in_ids(events))
        fold.load("analytics_sign_in_attempts", _attempt_ids(events))
        for projected in events:
            _apply_one(fold, projected.position, projected.event)
        if not memo.get("defer") or fold.size() > MEMO_LIMIT:
            self.flush(write)

    def flush(self, write: Write) -> None:
        """Write the rows the fold holds back; start a fresh fold if it has grown large."""
        fold: _Fold | None = write.memo.get("fold")
        if fold is None:
            return
        fold.cursor = write.cursor
        fold.write()
        if fold.size() > MEMO_LIMIT:
            write.memo["fold"] = _Fold(write.db, write.generation)
            write.memo["complete"] = False


def _sign_in_ids(events: Sequence[ProjectedEvent]) -> set[str]:
    ids: set[str] = set()
    for p in events:
        e = p.event
        for attribute in ("sign_in_id", "from_sign_in_id"):
            if getattr(e, attribute, None) is not None:
                ids.add(str(getattr(e, attribute)))
        ids.update(str(i) for i in getattr(e, "sign_in_ids", []))
    return ids


def _attempt_ids(events: Sequence[ProjectedEvent]) -> set[str]:
    return {str(p.event.attempt_id) for p in events if hasattr(p.event, "attempt_id")}


def _apply_one(fold: _Fold, position: int, event: Any) -> None:
    kind = type(event).__name__
    session_id = str(event.originator_id.int)
    at = event.timestamp
    if kind == "Started":
        fold.new(
            "analytics_sessions",
            session_id,
            {"session_id": session_id, "started_at": at, "events": 0},
        )
    session = fold.row("analytics_sessions", session_id)
    session["last_change_at"] = at
    session["events"] = int(session.get("events") or 0) + 1

    def end(ids: Iterable[int], reason: str) -> None:
        for sign_in_id in ids:
            fold.row("analytics_sign_ins", str(sign_in_id)).update(ended_at=at, end_reason=reason)
            if session.get("active_sign_in_id") == str(sign_in_id):
                session.update(active_sign_in_id=None, active_user_id=None)

    if kind in ("SignInAttempted", "SignUpAttempted"):
        fold.new("analytics_sign_in_attempts", str(event.attempt_id), {
            "attempt_id": str(event.attempt_id), "session_id": session_id,
            "kind": "sign_up" if kind == "SignUpAttempted" else "sign_in",
            "method": getattr(event, "method", "email_otp"),
            # A sign-up's user does not exist until it completes.
            "user_id": _id(event.user_id) if kind == "SignInAttempted" else None,
            "attempted_at": at, "failed_verifications": 0,
        })  # fmt: skip
    elif kind == "SignInAttemptFailed":
        attempt = fold.row("analytics_sign_in_attempts", str(event.attempt_id))
        attempt["failed_verifications"] = int(attempt.get("failed_verifications") or 0) + 1
        if event.terminal:
            attempt["failed_at"] = at
    elif kind == "SignInCompleted":
        attempt = fold.row("analytics_sign_in_attempts", str(event.attempt_id))
        attempt.update(completed_at=at, user_id=str(event.user_id))
        fold.new("analytics_sign_ins", str(event.sign_in_id), {
            "sign_in_id": str(event.sign_in_id), "session_id": session_id,
            "user_id": str(event.user_id), "method": event.method, "started_at": at,
            "expires_at": event.expires_at,
        })  # fmt: skip
        session.update(active_sign_in_id=str(event.sign_in_id), active_user_id=str(event.user_id))
    elif kind == "ActiveSignInSwitched":
        user_id = fold.rows["analytics_sign_ins"][str(event.sign_in_id)]["user_id"]
        fold.appended["analytics_switches"].append({
            "position": position, "switched_at": at, "session_id": session_id,
            "from_sign_in_id": _id(event.from_sign_in_id), "to_sign_in_id": str(event.sign_in_id),
            "user_id": user_id,
        })  # fmt: skip
        session.update(active_sign_in_id=str(event.sign_in_id), active_user_id=user_id)
    elif kind == "MembershipActivated":
        activated = (
            "workspace" if event.workspace_membership_id is not None
            else "organization" if event.organization_membership_id is not None
            else "cleared"
        )  # fmt: skip
        fold.appended["analytics_membership_activations"].append({
            "position": position, "activated_at": at, "session_id": session_id,
            "sign_in_id": str(event.sign_in_id), "user_id": str(event.user_id), "kind": activated,
            "organization_membership_id": _id(event.organization_membership_id),
            "workspace_membership_id": _id(event.workspace_membership_id),
        })  # fmt: skip
    elif kind in END_REASONS:
        end(getattr(event, "sign_in_ids", None) or [event.sign_in_id], END_REASONS[kind])
