"""Fixtures of the audit tests: a second, empty store of the same kind as the first."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import fresh_postgres_url


@pytest.fixture
def empty_store(durable_database_url: str, tmp_path: Path) -> Iterator[str]:
    """Another store, empty, of the kind ``durable_database_url`` is (SQLite file or schema)."""
    if durable_database_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path}/imported.db"
        return
    with fresh_postgres_url() as url:
        yield url
