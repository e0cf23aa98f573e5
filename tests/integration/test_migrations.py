"""Schema migrations on SQLite and PostgreSQL, from a fresh store and from a store made by
the releases before versioned migrations (their DDL is kept as fixture SQL)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from infrastructure.container import build_services
from infrastructure.migrations import MIGRATIONS, Migration, migrate, schema_versions
from infrastructure.persistence import open_sql_database, store_config
from infrastructure.schema_baseline import store_baseline, views_baseline
from infrastructure.settings import Settings
from infrastructure.sql import SqlDatabase

FIXTURES = Path(__file__).parent / "fixtures"
NICKNAME = Migration(
    len(MIGRATIONS) + 1,
    "store",
    "test only: users gain a nickname",
    lambda db: [f"ALTER TABLE {db.table('directory_users')} ADD COLUMN nickname TEXT"],
)


@pytest.fixture
def db(durable_database_url: str) -> Iterator[SqlDatabase]:
    database = open_sql_database(store_config(Settings(database_url=durable_database_url)))
    yield database
    database.close()


def statements_before_migrations(dialect: str) -> list[str]:
    """The DDL the code before migrations ran, ``{schema}`` standing for the schema."""
    text = (FIXTURES / f"before-migrations.{dialect}.sql").read_text()
    code = "\n".join(line for line in text.splitlines() if not line.startswith("--"))
    return [s.strip().rstrip(";") for s in code.split(";\n") if s.strip()]


def create_as_before_migrations(db: SqlDatabase) -> None:
    """The tables exactly as the code before migrations created them (the event store and
    the views in one database, the default), with a user and a webhook endpoint."""
    schema = getattr(db.datastore, "schema", "")
    db.execute_script(
        [s.replace("{schema}", schema) for s in statements_before_migrations(db.dialect)]
    )
    with db.transaction() as cursor:
        cursor.execute(
            f"INSERT INTO {db.table('directory_users')} (id, email, first_name, last_name, "
            "password_hash, created_at) VALUES ('1', 'ann@example.com', 'Ann', 'Lee', NULL, "
            "'2026-01-01T00:00:00+00:00')"
        )
        cursor.execute(
            f"INSERT INTO {db.table('webhook_endpoints')} (id, url, event_types, enabled, "
            "created_at, since_position, secret) VALUES (7, 'https://example.com/hook', '[]', 1, "
            "0, 0, 'whsec')"
        )


def users(db: SqlDatabase) -> list[dict[str, object]]:
    with db.transaction(commit=False) as cursor:
        cursor.execute(f"SELECT * FROM {db.table('directory_users')} ORDER BY id")
        return [dict(row) for row in cursor.fetchall()]


def versions(database: str) -> list[int]:
    return [m.version for m in MIGRATIONS if m.database == database]


def test_a_fresh_store_gets_every_migration_once(db: SqlDatabase) -> None:
    assert migrate(db, "store") == versions("store")
    assert migrate(db, "store") == []
    assert migrate(db, "views") == versions("views")
    assert migrate(db, "views") == []

    assert schema_versions(db) == [m.version for m in MIGRATIONS]
    assert users(db) == []


def test_a_separate_views_database_gets_only_its_own_migrations(db: SqlDatabase) -> None:
    migrate(db, "views")

    assert schema_versions(db) == versions("views")
    with db.transaction(commit=False) as cursor:
        cursor.execute(f"SELECT count(*) AS n FROM {db.table('webhook_endpoints')}")
        assert cursor.fetchone() == {"n": 0}


def test_a_store_made_before_migrations_is_adopted_and_then_migrated(db: SqlDatabase) -> None:
    create_as_before_migrations(db)

    # The baselines find every table there and change nothing.
    assert migrate(db, "store") == versions("store")
    assert migrate(db, "views") == versions("views")
    assert [u["email"] for u in users(db)] == ["ann@example.com"]
    with db.transaction(commit=False) as cursor:
        cursor.execute(f"SELECT url FROM {db.table('webhook_endpoints')}")
        assert cursor.fetchall() == [{"url": "https://example.com/hook"}]

    assert migrate(db, "store", [*MIGRATIONS, NICKNAME]) == [NICKNAME.version]

    assert schema_versions(db) == [*(m.version for m in MIGRATIONS), NICKNAME.version]
    [ann] = users(db)
    assert (ann["email"], ann["nickname"]) == ("ann@example.com", None)
    with db.transaction() as cursor:
        cursor.execute(f"UPDATE {db.table('directory_users')} SET nickname = 'annie'")
    assert users(db)[0]["nickname"] == "annie"
    assert migrate(db, "store", [*MIGRATIONS, NICKNAME]) == []
    assert migrate(db, "views", [*MIGRATIONS, NICKNAME]) == []


def test_the_services_start_on_a_store_made_before_migrations(
    db: SqlDatabase, durable_database_url: str
) -> None:
    create_as_before_migrations(db)

    services = build_services(Settings(database_url=durable_database_url))
    try:
        assert services.directory.find_user_by_email("ANN@example.com") is not None
        assert services.webhooks.endpoint(7).url == "https://example.com/hook"
        assert schema_versions(db) == [m.version for m in MIGRATIONS]
    finally:
        services.close()


def test_the_baselines_are_the_ddl_of_the_releases_before_migrations(db: SqlDatabase) -> None:
    schema = getattr(db.datastore, "schema", "")
    ours = [*store_baseline(db), *views_baseline(db)]
    if schema:
        ours = [s.replace(f"{schema}.", "{schema}.") for s in ours]
    # The seals' table was named with a quoted schema then, the same table.
    before = [s.replace('"{schema}"', "{schema}") for s in statements_before_migrations(db.dialect)]

    assert ours == before


def test_migration_versions_must_increase(db: SqlDatabase) -> None:
    with pytest.raises(ValueError, match="must increase"):
        migrate(db, "store", [NICKNAME, *MIGRATIONS])
    with pytest.raises(ValueError, match="must increase"):
        migrate(db, "store", [*MIGRATIONS, *MIGRATIONS])
