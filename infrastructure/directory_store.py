"""The directory in SQL, as requests read it: users, memberships, groups, permissions.

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
never has to touch memberships outside the file. The tables are created by
:mod:`infrastructure.migrations`; directory files are loaded by
:mod:`infrastructure.directory_loading`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

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
from infrastructure.sql import Row, SqlCursor, SqlDatabase, select_in

_TABLES = ("users", "organizations", "organization_roles", "workspaces", "workspace_roles",
           "organization_memberships", "workspace_memberships")  # fmt: skip
# Only memberships whose workspace belongs to the parent membership's organization count.
_WORKSPACE_MEMBERSHIPS = (
    "SELECT w.*, o.user_id, o.organization_id FROM {workspace_memberships} w"
    " JOIN {organization_memberships} o ON o.id = w.organization_membership_id"
    " JOIN {workspaces} s ON s.id = w.workspace_id AND s.organization_id = o.organization_id"
)


class DuplicateEmail(EmailTaken, ValueError):
    """Raised when a new user's email already belongs to a user (compared lowercase)."""


class DirectoryTables:
    """The directory's table names, and SQL templates that use them."""

    def __init__(self, db: SqlDatabase, clock: Clock | None = None) -> None:
        self._db = db
        self._clock = clock or SystemClock()
        self._tables = {name: db.table(f"directory_{name}") for name in _TABLES}

    def _q(self, template: str, **names: str) -> str:
        # Table and column names come only from these modules; values always travel as
        # parameters, never in the SQL text.
        return template.format_map({**self._tables, **names})


class SqlDirectory(DirectoryTables):
    """The application's ``Directory``: the queries of the request path, and new users."""

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
            rows = where_in(cur, self._q("SELECT * FROM {users} WHERE id"), ids)
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

    def profiles_in_memory(self, user_ids: Iterable[int]) -> dict[int, UserProfile] | None:
        """Never: every call of :meth:`user_profiles` reads."""
        return None

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
                for r in where_in(cur, self._q(sql[kind]), map(str, ids)):
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
        with self._db.read() as cur:
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
            memberships = where_in(cur, self._q(sql), map(str, membership_ids))
            assigned = {m["id"]: json.loads(m["role_ids"]) for m in memberships}
            wanted = [role_id for ids in assigned.values() for role_id in ids]
            roles_sql = self._q("SELECT * FROM {t} WHERE id", t=self._tables[table])
            found = {r["id"]: r for r in where_in(cur, roles_sql, wanted)}
        return memberships, {
            m["id"]: tuple(
                Role(int(r["id"]), r["name"], tuple(json.loads(r["permissions"])))
                for r in (found.get(role_id) for role_id in assigned[m["id"]])
                if r is not None and r[owner] == m[owner]
            )
            for m in memberships
        }


def where_in(cur: SqlCursor, sql: str, values: Iterable[str]) -> list[Row]:
    """Rows of ``sql`` (which ends in ``WHERE column``) whose column is among the values."""
    select, column = sql.rsplit(" WHERE ", 1)
    return select_in(cur, select, column, values)


def _profile(row: Row) -> UserProfile:
    return UserProfile(int(row["id"]), row["email"], row["first_name"], row["last_name"])


def _fact(membership_id: str, user_id: int, org_id: str | int) -> OrganizationMembershipFact:
    return OrganizationMembershipFact(int(membership_id), user_id, int(org_id))
