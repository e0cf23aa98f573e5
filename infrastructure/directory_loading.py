"""Loading a directory file: make the stored directory agree with the file, in one
transaction, writing only what differs (see :mod:`infrastructure.directory_store` for the
tables)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg

from application.ports import Clock
from infrastructure.directory_file import DirectoryFile, DirectoryFileError, RoleEntry, UserEntry
from infrastructure.directory_store import DirectoryTables, where_in
from infrastructure.passwords import Argon2Passwords
from infrastructure.sql import SqlCursor, SqlDatabase

Rows = dict[str, dict[str, Any]]  # column values by id, as stored
_TAKEN = {
    "users": "its email was just taken by another user",
    "organization_memberships": "another stored membership has this user and organization",
    "workspace_memberships": "another stored membership has this parent and workspace",
}


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


class DirectoryLoader(DirectoryTables):
    """Loads directory files into the directory tables (the CLI's ``directory load``)."""

    def __init__(
        self, db: SqlDatabase, passwords: Argon2Passwords, *, clock: Clock | None = None
    ) -> None:
        super().__init__(db, clock)
        self._passwords = passwords

    def load(self, directory: DirectoryFile) -> LoadReport:
        """Make the stored directory agree with ``directory``, in one transaction."""
        new_hashes = self._new_password_hashes(directory.users)
        report = LoadReport()
        with self._db.transaction() as cur:
            self._load_users(cur, directory.users, new_hashes, report)
            self._load_organizations(cur, directory, report)
            self._load_memberships(cur, directory, report)
        return report

    def _new_password_hashes(self, users: Sequence[UserEntry]) -> dict[str, str]:
        """Hashes to store, by user id; made before the write transaction, as Argon2 is slow.

        A stored hash that already matches is kept, so loading a file again changes nothing.
        """
        with self._db.transaction(commit=False) as cur:
            sql = self._q("SELECT id, password_hash FROM {users} WHERE id")
            stored = {r["id"]: r["password_hash"] for r in where_in(cur, sql, _ids(users))}
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
        for row in where_in(cur, self._q("SELECT id, email FROM {users} WHERE email"), wanted):
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
        for stale in [r["id"] for r in where_in(cur, sql, owners) if r["id"] not in rows]:
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
        stored = {r["id"]: r for r in where_in(cur, sql, rows)}
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
