"""The SQL directory on SQLite and PostgreSQL: loading files, and the lookups sessions use."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from eventsourcing.postgres import PostgresDatastore
from eventsourcing.sqlite import SQLiteDatastore

from application.ports import Role
from domain.values import OrganizationMembershipFact, WorkspaceMembershipFact
from infrastructure.directory_cache import ProfileCachingDirectory
from infrastructure.directory_file import DirectoryFile, DirectoryFileError, parse_directory
from infrastructure.directory_loading import DirectoryLoader
from infrastructure.directory_store import DuplicateEmail, SqlDirectory
from infrastructure.migrations import migrate
from infrastructure.persistence import store_config
from infrastructure.settings import Settings
from infrastructure.sql import SqlDatabase
from tests.helpers import cheap_passwords

DEMO = Path(__file__).resolve().parents[2] / "infrastructure" / "demo" / "demo-directory.json"
TABLES = [
    "directory_users", "directory_organizations", "directory_organization_roles",
    "directory_workspaces", "directory_workspace_roles", "directory_organization_memberships",
    "directory_workspace_memberships",
]  # fmt: skip
ALICE, BOB, CAROL = 100000000000000001, 100000000000000002, 100000000000000003
ACME, GLOBEX = 200000000000000001, 200000000000000002
ACME_WEB = 400000000000000001
ADMIN, MEMBER = 300000000000000001, 300000000000000002
PASSWORDS = cheap_passwords()


@pytest.fixture
def db(durable_database_url: str) -> Iterator[SqlDatabase]:
    """A SqlDatabase on a new SQLite file, then on a new PostgreSQL schema."""
    config = store_config(Settings(database_url=durable_database_url))
    env = config.env
    if config.kind == "sqlite":
        yield SqlDatabase(SQLiteDatastore(env["SQLITE_DBNAME"]))
        return
    datastore = PostgresDatastore(
        dbname=env["POSTGRES_DBNAME"], host=env["POSTGRES_HOST"], port=env["POSTGRES_PORT"],
        user=env["POSTGRES_USER"], password=env["POSTGRES_PASSWORD"],
        schema=env["POSTGRES_SCHEMA"],
    )  # fmt: skip
    yield SqlDatabase(datastore)
    datastore.close()


@pytest.fixture
def directory(db: SqlDatabase) -> SqlDirectory:
    migrate(db, "store")
    migrate(db, "store")  # idempotent
    return SqlDirectory(db)


@pytest.fixture
def loader(db: SqlDatabase, directory: SqlDirectory) -> DirectoryLoader:
    return DirectoryLoader(db, PASSWORDS)


def demo(edit: Callable[[dict[str, Any]], None] | None = None) -> DirectoryFile:
    data = json.loads(DEMO.read_text())
    if edit:
        edit(data)
    return parse_directory(json.dumps(data))


def dump(db: SqlDatabase) -> dict[str, list[dict[str, Any]]]:
    """Every row of every directory table, in id order."""
    with db.transaction(commit=False) as cur:
        tables = {}
        for name in TABLES:
            cur.execute(f"SELECT * FROM {db.table(name)} ORDER BY id")
            tables[name] = [dict(row) for row in cur.fetchall()]
        return tables


def test_the_demo_file_loads(directory: SqlDirectory, loader: DirectoryLoader) -> None:
    report = loader.load(demo())

    assert (report.users.created, report.organizations.created) == (3, 2)
    assert (report.workspaces.created, report.roles.created, report.memberships.created) == (
        2, 6, 6
    )  # fmt: skip
    assert str(report).startswith("users 3 created, 0 updated, 0 unchanged; organizations")


def test_loading_the_same_file_again_changes_nothing(
    directory: SqlDirectory, loader: DirectoryLoader, db: SqlDatabase
) -> None:
    loader.load(demo())
    before = dump(db)

    report = loader.load(demo())

    assert report.changed == 0
    assert report.users.unchanged == 3
    assert report.memberships.unchanged == 6
    assert dump(db) == before  # the password hashes too


def test_a_changed_file_updates_names_roles_permissions_and_assignments(
    directory: SqlDirectory, loader: DirectoryLoader, db: SqlDatabase
) -> None:
    loader.load(demo())
    owner_id = 300000000000000004

    def edit(data: dict[str, Any]) -> None:
        acme = data["organizations"][0]
        acme["name"] = "Acme Corp"
        acme["roles"] = [  # Member removed, Admin changed, Owner added
            {"id": str(owner_id), "name": "Owner", "permissions": ["organization:own"]},
            {"id": str(ADMIN), "name": "Administrator", "permissions": ["organization:admin"]},
        ]
        data["organization_memberships"][0]["role_ids"] = [str(owner_id), str(ADMIN)]
        data["organization_memberships"][2]["role_ids"] = []
        data["users"][1]["first_name"] = "Robert"

    report = loader.load(demo(edit))

    assert report.organizations.updated == 1
    assert (report.roles.created, report.roles.updated, report.roles_removed) == (1, 1, 1)
    assert (report.memberships.updated, report.users.updated) == (2, 1)
    alice_acme = directory.organization_memberships([600000000000000001])[600000000000000001]
    assert alice_acme.roles == (
        Role(owner_id, "Owner", ("organization:own",)),
        Role(ADMIN, "Administrator", ("organization:admin",)),
    )
    assert directory.organization_memberships([600000000000000003])[600000000000000003].roles == ()
    assert directory.user_profiles([BOB])[BOB].first_name == "Robert"
    names = [row["name"] for row in dump(db)["directory_organizations"]]
    assert names == ["Acme Corp", "Globex"]


def test_a_file_failing_mid_load_leaves_every_table_as_it_was(
    directory: SqlDirectory, loader: DirectoryLoader, db: SqlDatabase
) -> None:
    loader.load(demo())
    # A membership the file does not know holds Bob's place in Globex.
    with db.transaction() as cur:
        cur.execute(
            f"INSERT INTO {db.table('directory_organization_memberships')}"
            " (id, organization_id, user_id, role_ids) VALUES ('690000000000000001',"
            f" '{GLOBEX}', '{BOB}', '[]')"
        )
    before = dump(db)

    def edit(data: dict[str, Any]) -> None:
        data["users"][0]["first_name"] = "Alicia"
        data["organizations"][0]["name"] = "Acme Corp"
        data["organization_memberships"].append({
            "id": "600000000000000009", "organization_id": str(GLOBEX), "user_id": str(BOB),
            "role_ids": [],
        })  # fmt: skip

    expected = r"organization_memberships\[3\]: another stored membership has this user and"
    with pytest.raises(DirectoryFileError, match=expected):
        loader.load(demo(edit))
    assert dump(db) == before


def test_an_email_of_a_user_outside_the_file_is_refused_cleanly(
    directory: SqlDirectory, loader: DirectoryLoader, db: SqlDatabase
) -> None:
    directory.create_user(900000000000000001, "dave@example.com", "Dave", "Doe", None)
    loader.load(demo())
    before = dump(db)

    def edit(data: dict[str, Any]) -> None:
        data["users"][0]["first_name"] = "Alicia"
        data["users"][2]["email"] = "Dave@Example.com"

    with pytest.raises(DirectoryFileError) as caught:
        loader.load(demo(edit))
    assert str(caught.value) == "users[2].email: already the email of user 900000000000000001"
    assert dump(db) == before


def test_a_bad_reference_in_the_last_entry_loads_nothing(
    directory: SqlDirectory, loader: DirectoryLoader, db: SqlDatabase
) -> None:
    data = json.loads(DEMO.read_text())
    data["workspace_memberships"][-1]["role_ids"] = ["500000000000000009"]

    with pytest.raises(DirectoryFileError, match=r"workspace_memberships\[2\]\.role_ids\[0\]"):
        loader.load(parse_directory(json.dumps(data)))
    assert all(rows == [] for rows in dump(db).values())


def test_passwords_are_stored_only_as_argon2_hashes(
    directory: SqlDirectory, loader: DirectoryLoader, db: SqlDatabase
) -> None:
    loader.load(demo())

    everything = json.dumps(dump(db), default=str)
    assert "demo-password" not in everything
    hashes = [row["password_hash"] for row in dump(db)["directory_users"]]
    assert all(h.startswith("$argon2id$") for h in hashes)
    found = directory.find_user_by_email("alice@example.com")
    assert found is not None
    assert found.password_hash is not None
    assert PASSWORDS.verify(found.password_hash, "alice-demo-password")
    assert not PASSWORDS.verify(found.password_hash, "bob-demo-password")


def test_a_changed_password_is_rehashed_and_a_missing_one_keeps_the_stored_hash(
    directory: SqlDirectory,
    loader: DirectoryLoader,
) -> None:
    loader.load(demo())
    bob_before = directory.find_user_by_email("bob@example.com")

    def edit(data: dict[str, Any]) -> None:
        data["users"][0]["password"] = "a-new-password"
        del data["users"][1]["password"]

    report = loader.load(demo(edit))

    alice = directory.find_user_by_email("alice@example.com")
    assert alice is not None
    assert PASSWORDS.verify(alice.password_hash, "a-new-password")
    assert directory.find_user_by_email("bob@example.com") == bob_before
    assert (report.users.updated, report.users.unchanged) == (1, 2)


def test_users_in_the_file_may_swap_emails(
    directory: SqlDirectory, loader: DirectoryLoader
) -> None:
    loader.load(demo())

    def edit(data: dict[str, Any]) -> None:
        alice, bob = data["users"][0], data["users"][1]
        alice["email"], bob["email"] = bob["email"], alice["email"]

    loader.load(demo(edit))

    bob = directory.find_user_by_email("bob@example.com")
    assert bob is not None
    assert bob.profile.id == ALICE
    assert directory.user_profiles([BOB])[BOB].email == "alice@example.com"


def test_lookups_return_the_directory_dataclasses(
    directory: SqlDirectory, loader: DirectoryLoader
) -> None:
    loader.load(demo())

    found = directory.find_user_by_email("ALICE@Example.COM")
    assert found is not None
    assert (found.profile.id, found.profile.email, found.profile.last_name) == (
        ALICE, "alice@example.com", "Archer"
    )  # fmt: skip
    assert directory.find_user_by_email("nobody@example.com") is None
    assert set(directory.user_profiles([ALICE, CAROL, 123])) == {ALICE, CAROL}

    alice_acme = OrganizationMembershipFact(600000000000000001, ALICE, ACME)
    assert directory.organization_membership_of(ALICE, ACME) == alice_acme
    assert directory.organization_membership_of(CAROL, ACME) is None
    assert directory.workspace_membership_of(ALICE, ACME_WEB) == WorkspaceMembershipFact(
        700000000000000001, ACME_WEB, alice_acme
    )
    assert directory.workspace_membership_of(CAROL, ACME_WEB) is None

    views = directory.organization_memberships([600000000000000001, 600000000000000003, 1])
    assert set(views) == {600000000000000001, 600000000000000003}
    assert views[600000000000000003].roles == (Role(MEMBER, "Member", ("organization:read",)),)
    bob_web = directory.workspace_memberships([700000000000000003])[700000000000000003]
    assert (bob_web.user_id, bob_web.organization_membership_id) == (BOB, 600000000000000003)
    assert bob_web.roles == (Role(500000000000000002, "Viewer", ("workspace:read",)),)


def test_roles_come_in_the_membership_s_order(
    directory: SqlDirectory, loader: DirectoryLoader
) -> None:
    def edit(data: dict[str, Any]) -> None:
        data["organization_memberships"][0]["role_ids"] = [str(MEMBER), str(ADMIN)]

    loader.load(demo(edit))

    roles = directory.organization_memberships([600000000000000001])[600000000000000001].roles
    assert [role.name for role in roles] == ["Member", "Admin"]
    assert roles[1].permissions == ("organization:admin", "organization:manage")


def test_create_user_refuses_a_taken_email_and_survives_reloads(
    directory: SqlDirectory,
    loader: DirectoryLoader,
) -> None:
    loader.load(demo())

    with pytest.raises(DuplicateEmail):
        directory.create_user(900000000000000001, "Alice@example.com", "A", "B", None)
    dave = directory.create_user(900000000000000002, "Dave@Example.com", "Dave", "Doe", "h")
    loader.load(demo())

    assert dave.email == "dave@example.com"
    assert directory.user_profiles([dave.id]) == {dave.id: dave}
    found = directory.find_user_by_email("dave@example.com")
    assert found is not None
    assert found.password_hash == "h"


class _Ticks:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_rendering_keeps_profiles_for_its_ttl_then_reads_the_directory_again(
    db: SqlDatabase, directory: SqlDirectory, loader: DirectoryLoader
) -> None:
    loader.load(demo())
    ticks = _Ticks()
    cached = ProfileCachingDirectory(db, ttl_seconds=10, monotonic=ticks)
    before = cached.user_profiles([ALICE, BOB])
    assert {before[ALICE].first_name, before[BOB].first_name} == {"Alice", "Bob"}

    def rename_alice(data: dict[str, Any]) -> None:
        next(u for u in data["users"] if u["id"] == str(ALICE))["first_name"] = "Alicia"

    loader.load(demo(rename_alice))  # as `directory load` in another process would
    ticks.now += 9.9
    assert cached.user_profiles([ALICE])[ALICE].first_name == "Alice"  # within the TTL
    assert directory.user_profiles([ALICE])[ALICE].first_name == "Alicia"  # uncached reads
    ticks.now += 0.2
    assert cached.user_profiles([ALICE, BOB])[ALICE].first_name == "Alicia"


def test_rendering_caches_no_absence_so_a_new_user_shows_at_once(
    db: SqlDatabase, directory: SqlDirectory, loader: DirectoryLoader
) -> None:
    loader.load(demo())
    cached = ProfileCachingDirectory(db, ttl_seconds=3600, monotonic=_Ticks())
    new_user = 100000000000000099
    assert cached.user_profiles([new_user, ALICE]).keys() == {ALICE}
    directory.create_user(new_user, "New@Example.com", "New", "User", None)
    assert cached.user_profiles([new_user])[new_user].email == "new@example.com"
