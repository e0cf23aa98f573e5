"""The directory in SQL: users, organizations, workspaces, roles and memberships.

Ids are canonical decimal TEXT, since unsigned 64-bit ids overflow PostgreSQL's BIGINT::

    directory_users(id, email UNIQUE, first_name, last_name, password_hash NULL, created_at)
    directory_organizations(id, name)
    directory_organization_roles(id, organization_id, position, name, permissions)
    directory_workspaces(id, organization_id, name)
    directory_workspace_roles(id, workspace_id, position, name, permissions)
    directory_organization_memberships(id, organization_id, user_id, role_ids)
        UNIQUE (user_id, organization_id)
    directory_workspace_memberships(id, workspace_id, organization_membership_id, role_ids)
        UNIQUE (organization_membership_id, workspace_id)

Emails are stored lowercase; ``created_at`` is ISO 8601 text. ``permissions`` and
``role_ids`` are JSON arrays of strings in file order. Role assignments are JSON rather than
link tables because a membership is always read and written whole; reads keep only the ids
that are still roles of the membership's own organization or workspace, so removing a role
never has to touch memberships outside the file.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg

from application.ports import (
    Clock,
    Group,
    GroupsById,
    OrganizationMembershipView,
    Role,
    UserCredentials,
    UserProfile,
    WorkspaceMembershipView,
)
from domain.errors import EmailTaken
from domain.values import OrganizationMembershipFact, WorkspaceMembershipFact
from infrastructure.clock import SystemClock
from infrastructure.directory_file import DirectoryFile, DirectoryFileError, RoleEntry, UserEntry
from infrastructure.passwords import Argon2Passwords
from infrastructure.sql import Row, SqlCursor, SqlDatabase

Rows = dict[str, dict[str, Any]]  # column values by id, as stored
_CHUNK = 500  # ids per IN (...) list, well under SQLite's limit on parameters
_TABLES = ("users", "organizations", "organization_roles", "workspaces", "workspace_roles",
           "organization_memberships", "workspace_memberships")  # fmt: skip
_DDL = (
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
_ROLES_DDL = (  # once for organization roles, once for workspace roles
    "CREATE TABLE IF NOT EXISTS {t} (id TEXT PRIMARY KEY, {owner} TEXT NOT NULL,"
    " position INTEGER NOT NULL, name TEXT NOT NULL, permissions TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS directory_roles_by_{owner} ON {t} ({owner})",
)
_ROLE_TABLES = {"organization_roles": "organization_id", "workspace_roles": "workspace_id"}
_TAKEN = {
    "users": "its email was just taken by another user",
    "organization_memberships": "another stored membership has this user and organization",
    "workspace_memberships": "another stored membership has this parent and workspace",
}
# Only memberships whose workspace belongs to the parent membership's organization count.
_WORKSPACE_MEMBERSHIPS = (
    "SELECT w.*, o.user_id, o.organization_id FROM {workspace_memberships} w"
    " JOIN {organization_memberships} o ON o.id = w.organization_membership_id"
    " JOIN {workspaces} s ON s.id = w.workspace_id AND s.organization_id = o.organization_id"
)


class DuplicateEmail(EmailTaken, ValueError):
    """Raised when a new user's email already belongs to a user (compared lowercase)."""


@dataclass
class Tally:
    """How many entries of one kind a load created, updated or left unchanged."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0

    def __str__(self) -> str:
        return f"{self.created} created, {self.updated} updated, {self.unchanged} unchanged"


@dataclass
class LoadReport:
    """What loading a directory file did; roles and memberships count both levels."""

    users: Tally = field(default_factory=Tally)
    organizations: Tally = field(default_factory=Tally)
    workspaces: Tally = field(default_factory=Tally)
    roles: Tally = field(default_factory=Tally)
    memberships: Tally = field(default_factory=Tally)
    roles_removed: int = 0

    def tallies(self) -> dict[str, Tally]:
        """The tally of each kind of entry, by kind."""
        return {"users": self.users, "organizations": self.organizations,
                "workspaces": self.workspaces, "roles": self.roles,
                "memberships": self.memberships}  # fmt: skip

    @property
    def changed(self) -> int:
        """Entries created, updated or removed."""
        tallies = self.tallies().values()
        return self.roles_removed + sum(t.created + t.updated for t in tallies)

    def __str__(self) -> str:
        kinds = "; ".join(f"{kind} {tally}" for kind, tally in self.tallies().items())
        return f"{kinds}; {self.roles_removed} roles removed"


class SqlDirectory:
    """The application's ``Directory``, plus loading directory files and creating users."""

    def __init__(
        self, db: SqlDatabase, passwords: Argon2Passwords, *, clock: Clock | None = None
    ) -> None:
        self._db = db
        self._passwords = passwords
        self._clock = clock or SystemClock()
        self._tables = {name: db.table(f"directory_{name}") for name in _TABLES}

    def _q(self, template: str, **names: str) -> str:
        # Table and column names come only from this module; values always travel as
        # parameters, never in the SQL text.
        return template.format_map({**self._tables, **names})

    def create_tables(self) -> None:
        """Create the tables and indexes that are missing."""
        roles = [
            self._q(ddl, t=self._tables[table], owner=owner)
            for table, owner in _ROLE_TABLES.items()
            for ddl in _ROLES_DDL
        ]
        self._db.execute_script([self._q(ddl) for ddl in _DDL] + roles)

    def load(self, directory: DirectoryFile) -> LoadReport:
        """Make the stored directory agree with ``directory``, in one transaction."""
        new_hashes = self._new_password_hashes(directory.users)
        report = LoadReport()
        with self._db.transaction() as cur:
            self._load_users(cur, directory.users, new_hashes, report)
            self._load_organizations(cur, directory, report)
            self._load_memberships(cur, directory, report)
        return report

    def create_user(
        self, user_id: int, email: str, first_name: str, last_name: str, password_hash: str | None
    ) -> UserProfile:
        """Add a user; raise :class:`DuplicateEmail` if the email is taken."""
        profile = UserProfile(user_id, email.lower(), first_name, last_name)
        params = {**vars(profile), "id": str(user_id), "password_hash": password_hash,
                  "created_at": self._clock.now().isoformat()}  # fmt: skip
        insert = (
            "INSERT INTO {users} (id, email, first_name, last_name, password_hash, created_at)"
            " VALUES (%(id)s, %(email)s, %(first_name)s, %(last_name)s, %(password_hash)s,"
            " %(created_at)s) ON CONFLICT (email) DO NOTHING RETURNING id"
        )
        with self._db.transaction() as cur:
            cur.execute(self._q(insert), params)
            if cur.fetchone() is None:
                raise DuplicateEmail
        return profile

    def find_user_by_email(self, email: str) -> UserCredentials | None:
        """The user with that email (case-insensitive), or None."""
        row = self._one("SELECT * FROM {users} WHERE email = %(e)s", e=email.lower())
        return None if row is None else UserCredentials(_profile(row), row["password_hash"])

    def user_profiles(self, user_ids: Iterable[int]) -> dict[int, UserProfile]:
        """Profiles of the users that exist among ``user_ids``."""
        ids = [str(i) for i in user_ids]
        if not ids:
            return {}
        with self._db.read() as cur:
            rows = _where_in(cur, self._q("SELECT * FROM {users} WHERE id"), ids)
        return {int(row["id"]): _profile(row) for row in rows}

    def organization_membership_of(
        self, user_id: int, organization_id: int
    ) -> OrganizationMembershipFact | None:
        """The user's membership of that organization, or None."""
        sql = (
            "SELECT id FROM {organization_memberships}"
            " WHERE user_id = %(u)s AND organization_id = %(o)s"
        )
        row = self._one(sql, u=str(user_id), o=str(organization_id))
        return None if row is None else _fact(row["id"], user_id, organization_id)

    def workspace_membership_of(
        self, user_id: int, workspace_id: int
    ) -> WorkspaceMembershipFact | None:
        """The user's membership of that workspace, or None."""
        sql = _WORKSPACE_MEMBERSHIPS + " WHERE w.workspace_id = %(w)s AND o.user_id = %(u)s"
        row = self._one(sql, u=str(user_id), w=str(workspace_id))
        if row is None:
            return None
        parent = _fact(row["organization_membership_id"], user_id, row["organization_id"])
        return WorkspaceMembershipFact(int(row["id"]), workspace_id, parent)

    def organization_memberships(
        self, membership_ids: Iterable[int]
    ) -> dict[int, OrganizationMembershipView]:
        """The organization memberships that exist among the ids, with roles."""
        sql = "SELECT * FROM {organization_memberships} WHERE id"
        rows, roles = self._with_roles(sql, membership_ids, "organization_roles", "organization_id")
        return {
            int(r["id"]): OrganizationMembershipView(
                int(r["id"]), int(r["organization_id"]), int(r["user_id"]), roles[r["id"]]
            )
            for r in rows
        }

    def workspace_memberships(
        self, membership_ids: Iterable[int]
    ) -> dict[int, WorkspaceMembershipView]:
        """The workspace memberships that exist among the ids, with roles."""
        sql = _WORKSPACE_MEMBERSHIPS + " WHERE w.id"
        rows, roles = self._with_roles(sql, membership_ids, "workspace_roles", "workspace_id")
        return {
            int(r["id"]): WorkspaceMembershipView(
                int(r["id"]), int(r["workspace_id"]), int(r["organization_membership_id"]),
                int(r["user_id"]), roles[r["id"]],
            )
            for r in rows
        }  # fmt: skip

    def user_membership_ids(self, user_id: int) -> tuple[list[int], list[int]]:
        """Ids of the user's organization memberships and workspace memberships."""
        with self._db.transaction(commit=False) as cur:
            cur.execute(
                self._q("SELECT id FROM {organization_memberships} WHERE user_id = %(u)s"),
                {"u": str(user_id)},
            )
            organizations = [int(r["id"]) for r in cur.fetchall()]
            cur.execute(
                self._q(_WORKSPACE_MEMBERSHIPS + " WHERE o.user_id = %(u)s"), {"u": str(user_id)}
            )
            workspaces = [int(r["id"]) for r in cur.fetchall()]
        return sorted(organizations), sorted(workspaces)

    def groups(self, organization_ids: Iterable[int], workspace_ids: Iterable[int]) -> GroupsById:
        """Organizations and workspaces by id, with their names and member counts."""
        sql = {
            "organizations": "SELECT g.id, g.name, NULL AS organization_id, (SELECT count(*)"
            " FROM {organization_memberships} m WHERE m.organization_id = g.id) AS members"
            " FROM {organizations} g WHERE g.id",
            "workspaces": "SELECT g.id, g.name, g.organization_id, (SELECT count(*)"
            " FROM {workspace_memberships} m WHERE m.workspace_id = g.id) AS members"
            " FROM {workspaces} g WHERE g.id",
        }
        found: GroupsById = {"organizations": {}, "workspaces": {}}
        with self._db.transaction(commit=False) as cur:
            for kind, ids in (("organizations", organization_ids), ("workspaces", workspace_ids)):
                for r in _where_in(cur, self._q(sql[kind]), map(str, ids)):
                    parent = int(r["organization_id"]) if r["organization_id"] else None
                    found[kind][int(r["id"])] = Group(
                        int(r["id"]), r["name"], int(r["members"]), parent
                    )
        return found

    def permissions(self) -> tuple[list[str], list[str]]:
        """Every permission some organization role, and some workspace role, grants."""
        found: list[list[str]] = []
        with self._db.transaction(commit=False) as cur:
            for table in ("organization_roles", "workspace_roles"):
                cur.execute(self._q("SELECT permissions FROM {t}", t=self._tables[table]))
                granted = {p for r in cur.fetchall() for p in json.loads(r["permissions"])}
                found.append(sorted(granted))
        return found[0], found[1]

    def _one(self, template: str, **params: str) -> Row | None:
        with self._db.transaction(commit=False) as cur:
            cur.execute(self._q(template), params)
            return cur.fetchone()

    def _with_roles(
        self, sql: str, membership_ids: Iterable[int], table: str, owner: str
    ) -> tuple[list[Row], dict[str, tuple[Role, ...]]]:
        """Memberships and their roles in their order, skipping ids not of their owner."""
        membership_ids = list(membership_ids)
        if not membership_ids:  # most sessions have none active: no transaction for nothing
            return [], {}
        with self._db.transaction(commit=False) as cur:
            memberships = _where_in(cur, self._q(sql), map(str, membership_ids))
            assigned = {m["id"]: json.loads(m["role_ids"]) for m in memberships}
            wanted = [role_id for ids in assigned.values() for role_id in ids]
            roles_sql = self._q("SELECT * FROM {t} WHERE id", t=self._tables[table])
            found = {r["id"]: r for r in _where_in(cur, roles_sql, wanted)}
        return memberships, {
            m["id"]: tuple(
                Role(int(r["id"]), r["name"], tuple(json.loads(r["permissions"])))
                for r in (found.get(role_id) for role_id in assigned[m["id"]])
                if r is not None and r[owner] == m[owner]
            )
            for m in memberships
        }

    def _new_password_hashes(self, users: Sequence[UserEntry]) -> dict[str, str]:
        """Hashes to store, by user id; made before the write transaction, as Argon2 is slow.

        A stored hash that already matches is kept, so loading a file again changes nothing.
        """
        with self._db.transaction(commit=False) as cur:
            sql = self._q("SELECT id, password_hash FROM {users} WHERE id")
            stored = {r["id"]: r["password_hash"] for r in _where_in(cur, sql, _ids(users))}
        hashes: dict[str, str] = {}
        for user in users:
            if user.password is None:
                continue
            password, old = user.password.get_secret_value(), stored.get(str(user.id))
            if old is None or not self._passwords.matches(old, password):
                hashes[str(user.id)] = self._passwords.hash(password)
        return hashes

    def _load_users(
        self, cur: SqlCursor, users: Sequence[UserEntry], hashes: Mapping[str, str],
        report: LoadReport,
    ) -> None:  # fmt: skip
        self._free_emails(cur, users)
        rows: Rows = {
            str(u.id): {"email": u.email, "first_name": u.first_name, "last_name": u.last_name}
            for u in users
        }
        for user_id, password_hash in hashes.items():
            rows[user_id]["password_hash"] = password_hash
        now = self._clock.now().isoformat()
        self._sync(cur, "users", rows, report.users, {"password_hash": None, "created_at": now})

    def _free_emails(self, cur: SqlCursor, users: Sequence[UserEntry]) -> None:
        """Refuse emails held by users outside the file; park those moving between its users."""
        wanted = {user.email: (i, str(user.id)) for i, user in enumerate(users)}
        in_file = set(_ids(users))
        problems = []
        for row in _where_in(cur, self._q("SELECT id, email FROM {users} WHERE email"), wanted):
            index, user_id = wanted[row["email"]]
            if row["id"] == user_id:
                continue
            if row["id"] not in in_file:
                problems.append(f"users[{index}].email: already the email of user {row['id']}")
            else:  # its owner takes another email from the file; "#id" is never an email
                parked = self._q("UPDATE {users} SET email = %(parked)s WHERE id = %(id)s")
                cur.execute(parked, {"parked": f"#{row['id']}", "id": row["id"]})
        if problems:
            raise DirectoryFileError(problems)

    def _load_organizations(self, cur: SqlCursor, d: DirectoryFile, report: LoadReport) -> None:
        orgs: Rows = {str(o.id): {"name": o.name} for o in d.organizations}
        self._sync(cur, "organizations", orgs, report.organizations)
        owned = [(str(o.id), w) for o in d.organizations for w in o.workspaces]
        workspaces: Rows = {str(w.id): {"organization_id": o, "name": w.name} for o, w in owned}
        self._sync(cur, "workspaces", workspaces, report.workspaces)
        org_roles = _role_rows("organization_id", [(str(o.id), o.roles) for o in d.organizations])
        self._sync_roles(cur, "organization_roles", "organization_id", org_roles, orgs, report)
        ws_roles = _role_rows("workspace_id", [(str(w.id), w.roles) for _, w in owned])
        self._sync_roles(cur, "workspace_roles", "workspace_id", ws_roles, workspaces, report)

    def _sync_roles(
        self, cur: SqlCursor, table: str, owner: str, rows: Rows, owners: Collection[str],
        report: LoadReport,
    ) -> None:  # fmt: skip
        """Make the roles of each owner in the file exactly the file's."""
        sql = self._q("SELECT id FROM {t} WHERE {owner}", t=self._tables[table], owner=owner)
        delete = self._q("DELETE FROM {t} WHERE id = %(id)s", t=self._tables[table])
        for stale in [r["id"] for r in _where_in(cur, sql, owners) if r["id"] not in rows]:
            cur.execute(delete, {"id": stale})
            report.roles_removed += 1
        self._sync(cur, table, rows, report.roles)

    def _load_memberships(self, cur: SqlCursor, d: DirectoryFile, report: LoadReport) -> None:
        org_rows: Rows = {
            str(m.id): {"organization_id": str(m.organization_id), "user_id": str(m.user_id),
                        "role_ids": _json(m.role_ids)}
            for m in d.organization_memberships
        }  # fmt: skip
        self._sync(cur, "organization_memberships", org_rows, report.memberships)
        ws_rows: Rows = {
            str(m.id): {"workspace_id": str(m.workspace_id), "role_ids": _json(m.role_ids),
                        "organization_membership_id": str(m.organization_membership_id)}
            for m in d.workspace_memberships
        }  # fmt: skip
        self._sync(cur, "workspace_memberships", ws_rows, report.memberships)

    def _sync(
        self, cur: SqlCursor, table: str, rows: Rows, tally: Tally,
        insert_only: Mapping[str, Any] | None = None,
    ) -> None:  # fmt: skip
        """Insert or update ``rows`` by id, writing only those that differ from the store."""
        sql = self._q("SELECT * FROM {t} WHERE id", t=self._tables[table])
        stored = {r["id"]: r for r in _where_in(cur, sql, rows)}
        for index, (key, row) in enumerate(rows.items()):
            old = stored.get(key)
            if old is not None and all(old[column] == value for column, value in row.items()):
                tally.unchanged += 1
                continue
            params = {**(insert_only or {}), **row, "id": key}
            upsert = self._q(
                "INSERT INTO {t} ({columns}) VALUES ({values})"
                " ON CONFLICT (id) DO UPDATE SET {set}",
                t=self._tables[table],
                columns=", ".join(params),
                values=", ".join(f"%({column})s" for column in params),
                set=", ".join(f"{column} = excluded.{column}" for column in row),
            )
            try:
                cur.execute(upsert, params)
            except (sqlite3.IntegrityError, psycopg.IntegrityError):
                # A row outside the file holds the same unique place; the load rolls back.
                problem = _TAKEN.get(table, "conflicts with a stored entry")
                raise DirectoryFileError([f"{table}[{index}]: {problem}"]) from None
            if old is None:
                tally.created += 1
            else:
                tally.updated += 1


def _where_in(cur: SqlCursor, sql: str, values: Iterable[str]) -> list[Row]:
    """Rows of ``sql`` (which ends in a column) whose column is among the values."""
    unique = list(dict.fromkeys(values))
    rows: list[Row] = []
    for start in range(0, len(unique), _CHUNK):
        params = {f"v{i}": value for i, value in enumerate(unique[start : start + _CHUNK])}
        cur.execute(sql + " IN (" + ", ".join(f"%({name})s" for name in params) + ")", params)
        rows.extend(cur.fetchall())
    return rows


def _ids(users: Iterable[UserEntry]) -> list[str]:
    return [str(user.id) for user in users]


def _json(values: Iterable[object]) -> str:
    return json.dumps([str(value) for value in values])


def _role_rows(owner: str, owned: Iterable[tuple[str, Sequence[RoleEntry]]]) -> Rows:
    return {
        str(role.id): {owner: owner_id, "position": position, "name": role.name,
                       "permissions": _json(role.permissions)}
        for owner_id, roles in owned
        for position, role in enumerate(roles)
    }  # fmt: skip


def _profile(row: Row) -> UserProfile:
    return UserProfile(int(row["id"]), row["email"], row["first_name"], row["last_name"])


def _fact(membership_id: str, user_id: int, org_id: str | int) -> OrganizationMembershipFact:
    return OrganizationMembershipFact(int(membership_id), user_id, int(org_id))
