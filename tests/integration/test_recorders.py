"""Our recorders (sealing, and SQLite with a subscription) pass eventsourcing's own recorder
test cases, on SQLite and PostgreSQL; and after those runs every seal still verifies."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from contextlib import ExitStack
from types import SimpleNamespace
from typing import Any

import pytest
from eventsourcing.persistence import IntegrityError, StoredEvent
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
from tests.conftest import fresh_schema, postgres_datastore


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
        self.schema = ExitStack()
        self.datastore = postgres_datastore(self.schema.enter_context(fresh_schema("rec")))
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
        self.schema.close()


def _assert_seals_verify(recorder: Any, db: SqlDatabase) -> None:
    """Whatever the library's tests appended, concurrently or not, is sealed consistently."""
    app = SimpleNamespace(recorder=recorder, snapshots=None)
    report = Verifier(app, db, Chain()).verify()
    assert report.problem is None, report.problem


class TestSealingSQLiteRecorder(_SQLiteStore, ApplicationRecorderTestCase[Any]):
    """The library's application recorder contract, for our SQLite recorder."""


class TestSealingSQLiteNonInterleaving(_SQLiteStore, NonInterleavingNotificationIDsBaseCase):
    """Two concurrent appends never interleave their positions."""


@pytest.mark.slow  # PostgreSQL
class TestSealingPostgresRecorder(_PostgresStore, ApplicationRecorderTestCase[Any]):
    """The library's application recorder contract, for our PostgreSQL recorder."""


@pytest.mark.slow  # PostgreSQL
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
