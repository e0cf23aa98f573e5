"""Our recorders (sealing, and SQLite with a subscription) pass eventsourcing's own recorder
test cases, on SQLite and PostgreSQL; and after those runs every seal still verifies."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from types import SimpleNamespace
from typing import Any

import psycopg
import pytest
from eventsourcing.persistence import IntegrityError, StoredEvent
from eventsourcing.postgres import PostgresDatastore
from eventsourcing.sqlite import SQLiteDatastore
from eventsourcing.tests.persistence import (
    ApplicationRecorderTestCase,
    NonInterleavingNotificationIDsBaseCase,
)

from infrastructure.audit.chain import Chain
from infrastructure.audit.recorders import SealingPostgresApplicationRecorder
from infrastructure.audit.sealing import SealingSQLiteApplicationRecorder
from infrastructure.audit.verify import Verifier
from infrastructure.sql import SqlDatabase
from tests.conftest import POSTGRES_URL, require_postgres


class _SQLiteStore:
    def setUp(self) -> None:
        self.directory = tempfile.mkdtemp()
        self.datastore = SQLiteDatastore(f"{self.directory}/events.db")
        self.recorders: list[Any] = []

    def create_recorder(self) -> SealingSQLiteApplicationRecorder:
        recorder = SealingSQLiteApplicationRecorder(self.datastore)
        recorder.create_table()
        self.recorders.append(recorder)
        return recorder

    def tearDown(self) -> None:
        for recorder in self.recorders:
            _assert_seals_verify(recorder, SqlDatabase(self.datastore))
        self.datastore.close()
        shutil.rmtree(self.directory, ignore_errors=True)


class _PostgresStore:
    def setUp(self) -> None:
        require_postgres()
        self.schema = f"rec_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {self.schema}")
        info = psycopg.conninfo.conninfo_to_dict(POSTGRES_URL)
        self.datastore = PostgresDatastore(
            dbname=str(info.get("dbname", "test")),
            host=str(info.get("host", "127.0.0.1")),
            port=str(info.get("port", "5432")),
            user=str(info.get("user", "postgres")),
            password=str(info.get("password", "")),
            schema=self.schema,
            pool_size=12,
            max_overflow=12,
        )
        self.recorders: list[Any] = []

    def create_recorder(self) -> SealingPostgresApplicationRecorder:
        recorder = SealingPostgresApplicationRecorder(self.datastore, events_table_name="events")
        recorder.create_table()
        self.recorders.append(recorder)
        return recorder

    def tearDown(self) -> None:
        for recorder in self.recorders:
            _assert_seals_verify(recorder, SqlDatabase(self.datastore))
        self.datastore.close()
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE")


def _assert_seals_verify(recorder: Any, db: SqlDatabase) -> None:
    """Whatever the library's tests appended, concurrently or not, is sealed consistently."""
    app = SimpleNamespace(recorder=recorder, snapshots=None)
    report = Verifier(app, db, Chain()).verify()
    assert report.problem is None, report.problem


class TestSealingSQLiteRecorder(_SQLiteStore, ApplicationRecorderTestCase[Any]):
    """The library's application recorder contract, for our SQLite recorder."""


class TestSealingSQLiteNonInterleaving(_SQLiteStore, NonInterleavingNotificationIDsBaseCase):
    """Two concurrent appends never interleave their positions."""


class TestSealingPostgresRecorder(_PostgresStore, ApplicationRecorderTestCase[Any]):
    """The library's application recorder contract, for our PostgreSQL recorder."""


class TestSealingPostgresNonInterleaving(_PostgresStore, NonInterleavingNotificationIDsBaseCase):
    """Two concurrent appends never interleave their positions."""


def test_an_append_that_fails_leaves_no_seal(tmp_path: Any) -> None:
    datastore = SQLiteDatastore(f"{tmp_path}/events.db")
    recorder = SealingSQLiteApplicationRecorder(datastore)
    recorder.create_table()
    originator = uuid.uuid4()
    first = StoredEvent(originator, 1, "topic", b"one")
    recorder.insert_events([first])
    with pytest.raises(IntegrityError):
        recorder.insert_events([StoredEvent(originator, 2, "topic", b"two"), first])
    db = SqlDatabase(datastore)
    with db.transaction(commit=False) as cursor:
        cursor.execute("SELECT count(*) AS n FROM audit_chain")
        row = cursor.fetchone()
    assert row is not None
    assert row["n"] == 1
    _assert_seals_verify(recorder, db)
    datastore.close()
