"""Fixtures of the audit tests: a second, empty store of the same kind as the first."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.audit.support import postgres_schema


@pytest.fixture
def empty_store(durable_database_url: str, tmp_path: Path) -> Iterator[str]:
    """Another store, empty, of the kind ``durable_database_url`` is (SQLite file or schema)."""
    if durable_database_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path}/imported.db"
        return
    with postgres_schema() as url:
        yield url
