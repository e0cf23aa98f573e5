"""Schema migrations on SQLite and PostgreSQL, from a fresh store and from a store made by
the releases before versioned migrations (their DDL is kept as fixture SQL)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from infrastructure.container import build_services
from infrastructure.migrations import MIGRATIONS, Migration, migrate, schema_versions
from infrastructure.persistence import open_sql_database, store_config
from infrastructure.settings import Settings
from infrastructure.sql import SqlDatabase

FIXTURES = Path(__file__).parent / "fixtures"
NICKNAME = Migration(
    len(MIGRATIONS) + 1,
    "test only: users gain a nickname",
    lambda db: [f"ALTER TABLE {db.table('directory_users')} ADD COLUMN nickname TEXT"],
)


@pytest.fixture
def db(durable_database_url: str) -> Iterator[SqlDatabase]:
    database = open_sql_database(store_config(Settings(database_url=durable_database_url)))
    yield database
    database.close()


def create_as_before_migrations(db: SqlDatabase) -> None:
    """The tables exactly as the code before migrations created them, and a user."""
    text = (FIXTURES / f"before-migrations.{db.dialect}.sql").read_text()
    code = "\n".join(line for line in text.splitlines() if not line.startswith("--"))
    schema = getattr(db.datastore, "schema", "")
    statements = [s.strip().replace("{schema}", schema) for s in code.split(";\n")]
    db.execute_script([s for s in statements if s])
    with db.transaction() as cursor:
        cursor.execute(
            f"INSERT INTO {db.table('directory_users')} (id, email, first_name, last_name, "
            "password_hash, created_at) VALUES ('1', 'ann@example.com', 'Ann', 'Lee', NULL, "
            "'2026-01-01T00:00:00+00:00')"
        )


def users(db: SqlDatabase) -> list[dict[str, object]]:
    with db.transaction(commit=False) as cursor:
        cursor.execute(f"SELECT * FROM {db.table('directory_users')} ORDER BY id")
        return [dict(row) for row in cursor.fetchall()]


def test_a_fresh_store_gets_every_migration_once(db: SqlDatabase) -> None:
    assert migrate(db) == [m.version for m in MIGRATIONS]
    assert migrate(db) == []

    assert schema_versions(db) == [m.version for m in MIGRATIONS]
    assert users(db) == []


def test_a_store_made_before_migrations_is_adopted_and_then_migrated(db: SqlDatabase) -> None:
    create_as_before_migrations(db)

    assert migrate(db) == [1]  # the baseline finds every table there and changes nothing
    assert [u["email"] for u in users(db)] == ["ann@example.com"]

    assert migrate(db, [*MIGRATIONS, NICKNAME]) == [NICKNAME.version]

    assert schema_versions(db) == [*(m.version for m in MIGRATIONS), NICKNAME.version]
    [ann] = users(db)
    assert (ann["email"], ann["nickname"]) == ("ann@example.com", None)
    with db.transaction() as cursor:
        cursor.execute(f"UPDATE {db.table('directory_users')} SET nickname = 'annie'")
    assert users(db)[0]["nickname"] == "annie"
    assert migrate(db, [*MIGRATIONS, NICKNAME]) == []


def test_the_services_start_on_a_store_made_before_migrations(
    db: SqlDatabase, durable_database_url: str
) -> None:
    create_as_before_migrations(db)

    services = build_services(Settings(database_url=durable_database_url))
    try:
        assert services.directory.find_user_by_email("ANN@example.com") is not None
        assert schema_versions(db) == [m.version for m in MIGRATIONS]
    finally:
        services.close()


def test_migration_versions_must_increase(db: SqlDatabase) -> None:
    with pytest.raises(ValueError, match="must increase"):
        migrate(db, [NICKNAME, *MIGRATIONS])
    with pytest.raises(ValueError, match="must increase"):
        migrate(db, [*MIGRATIONS, *MIGRATIONS])
