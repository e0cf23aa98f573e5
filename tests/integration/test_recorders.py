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


class _Store:
    """A datastore of its own per test case; every recorder made on it has its seals
    verified at the end. Subclasses open the datastore and make the recorder."""

    datastore: Any
    cleanup: ExitStack

    def open_datastore(self) -> Any:
        raise NotImplementedError

    def new_recorder(self) -> Any:
        raise NotImplementedError

    def setUp(self) -> None:
        self.cleanup = ExitStack()
        self.datastore = self.open_datastore()
        self.recorders: list[Any] = []

    def create_recorder(self) -> Any:
        recorder = self.new_recorder()
        recorder.create_table()
        self.recorders.append(recorder)
        return recorder

    def tearDown(self) -> None:
        for recorder in self.recorders:
            _assert_seals_verify(recorder, SqlDatabase(self.datastore))
        self.datastore.close()
        self.cleanup.close()


class _SQLiteStore(_Store):
    def open_datastore(self) -> SQLiteDatastore:
        directory = tempfile.mkdtemp()
        self.cleanup.callback(shutil.rmtree, directory, ignore_errors=True)
        return SQLiteDatastore(f"{directory}/events.db")

    def new_recorder(self) -> SealingSQLiteApplicationRecorder:
        return SealingSQLiteApplicationRecorder(self.datastore)


class _PostgresStore(_Store):
    def open_datastore(self) -> Any:
        return postgres_datastore(self.cleanup.enter_context(fresh_schema("rec")))

    def new_recorder(self) -> SealingPostgresApplicationRecorder:
        return SealingPostgresApplicationRecorder(self.datastore, events_table_name="events")


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
