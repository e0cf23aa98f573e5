"""Guarded appends: an append commits only while the aggregates it relies on are unchanged.

A command authorised by a cookie this process remembers does not read the cookie's token
again; its append carries the token's id and version as a guard (``application.ports.
Guard``), and the recorder checks it where positions are issued (PostgreSQL: inside the
append function, under the table lock, in the same round trip; SQLite: inside the write
transaction). On both stores' sealing recorders: a guard that holds lets the append commit;
one whose aggregate moved on, or never existed, fails it with StaleGuard and records nothing;
in a batch only the guarded appends fail; the careful PostgreSQL path checks guards too; and
guards are refused on the library's own path (tracking records), where nothing checks them.
Every seal verifies after each test.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.persistence import ProgrammingError, Tracking
from eventsourcing.postgres import PostgresDatastore
from eventsourcing.sqlite import SQLiteDatastore

from application.ports import Guard, StaleGuard
from infrastructure.audit.group_commit import Append
from infrastructure.audit.recorders import SealingPostgresApplicationRecorder
from infrastructure.audit.sealing import SealingSQLiteApplicationRecorder
from infrastructure.sql import SqlDatabase
from tests.conftest import postgres_datastore
from tests.integration.test_recorders import _assert_seals_verify
from tests.unit.test_group_commit import _assert_contiguous, _event

Recorder = SealingPostgresApplicationRecorder | SealingSQLiteApplicationRecorder


@pytest.fixture(params=["sqlite", "postgres"])
def recorder(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Recorder]:
    datastore: SQLiteDatastore | PostgresDatastore
    made: Recorder
    if request.param == "sqlite":
        datastore = SQLiteDatastore(str(tmp_path / "events.db"))
        made = SealingSQLiteApplicationRecorder(datastore)
    else:
        datastore = postgres_datastore(request.getfixturevalue("postgres_schema"))
        made = SealingPostgresApplicationRecorder(datastore, events_table_name="events")
    with _verified(made, datastore):
        yield made


@contextmanager
def _verified(recorder: Recorder, datastore: SQLiteDatastore | PostgresDatastore) -> Iterator[None]:
    """The recorder's tables created; after the block, every seal verified and the
    datastore closed."""
    recorder.create_table()
    try:
        yield
        _assert_seals_verify(recorder, SqlDatabase(datastore))
    finally:
        datastore.close()


def _log(recorder: Recorder) -> list[tuple[UUID, int, bytes]]:
    return [
        (UUID(str(n.originator_id)), n.originator_version, n.state)
        for n in recorder.select_notifications(start=1, limit=10**6)
    ]


def _with_token(recorder: Recorder, versions: int = 1) -> UUID:
    token = uuid.uuid4()
    events = [_event(token, v, f"token-{v}") for v in range(1, versions + 1)]
    _assert_contiguous(recorder.insert_events(events), versions)
    return token


def test_a_guarded_append_commits_only_while_its_guard_holds(recorder: Recorder) -> None:
    token, session = _with_token(recorder), uuid.uuid4()
    _assert_contiguous(recorder.insert_events([_event(session, 1, "S1")], guards=[(token, 1)]), 1)

    _assert_contiguous(recorder.insert_events([_event(token, 2, "token-revoked")]), 1)
    before = _log(recorder)
    with pytest.raises(StaleGuard):
        recorder.insert_events([_event(session, 2, "S2")], guards=[Guard(token, 1)])
    with pytest.raises(StaleGuard):  # an aggregate with no events is at no version
        recorder.insert_events([_event(session, 2, "S2")], guards=[Guard(uuid.uuid4(), 1)])
    assert _log(recorder) == before

    _assert_contiguous(recorder.insert_events([_event(session, 2, "S2")], guards=[(token, 2)]), 1)
    assert [state for _, _, state in _log(recorder)][-1] == b"S2"


def test_an_append_may_continue_the_aggregate_it_is_guarded_by(recorder: Recorder) -> None:
    token = _with_token(recorder)
    _assert_contiguous(recorder.insert_events([_event(token, 2, "T2")], guards=[(token, 1)]), 1)
    with pytest.raises(StaleGuard):
        recorder.insert_events([_event(token, 3, "T3")], guards=[Guard(token, 1)])
    assert [state for _, _, state in _log(recorder)] == [b"token-1", b"T2"]


def test_in_one_batch_only_the_appends_with_a_stale_guard_fail(recorder: Recorder) -> None:
    old, current = _with_token(recorder, 2), _with_token(recorder)
    one, two, three, four = (uuid.uuid4() for _ in range(4))
    stale = Append([_event(one, 1, "stale")], [Guard(old, 1)])
    holds = Append([_event(two, 1, "holds")], [Guard(old, 2), Guard(current, 1)])
    unguarded = Append([_event(three, 1, "unguarded")])
    half = Append([_event(four, 1, "half")], [Guard(current, 1), Guard(old, 1)])
    before = _log(recorder)

    recorder._commit_batch([stale, holds, unguarded, half])

    for failed in (stale, half):
        assert failed.ids is None
        assert isinstance(failed.error, StaleGuard), failed.error
    for committed in (holds, unguarded):
        assert committed.error is None
        _assert_contiguous(committed.ids, 1)
    assert _log(recorder) == [*before, (two, 1, b"holds"), (three, 1, b"unguarded")]


def test_the_careful_postgres_path_checks_guards_under_the_lock(postgres_schema: str) -> None:
    """(SQLite has one path, covered above.)"""
    datastore = postgres_datastore(postgres_schema)
    recorder = SealingPostgresApplicationRecorder(datastore, events_table_name="events")
    with _verified(recorder, datastore):
        _careful_path_checks_guards(recorder)


def _careful_path_checks_guards(recorder: SealingPostgresApplicationRecorder) -> None:
    token = _with_token(recorder, 2)
    stale = Append([_event(uuid.uuid4(), 1, "stale")], [Guard(token, 1)])
    good = Append([_event(uuid.uuid4(), 1, "good")], [Guard(token, 2)])
    before = _log(recorder)

    assert recorder._try_commit([stale, good]) == [stale]  # rolled back, both
    assert isinstance(stale.error, StaleGuard)
    assert _log(recorder) == before
    assert recorder._try_commit([good]) == []
    _assert_contiguous(good.ids, 1)
    assert _log(recorder)[-1][2] == b"good"


def test_guards_are_refused_where_nothing_would_check_them(recorder: Recorder) -> None:
    token = _with_token(recorder)
    tracked: dict[str, Any] = {"tracking": Tracking("upstream", 1)}
    before = _log(recorder)
    with pytest.raises(ProgrammingError):
        recorder.insert_events([_event(uuid.uuid4(), 1, "x")], guards=[Guard(token, 1)], **tracked)
    with pytest.raises(ProgrammingError):
        recorder.insert_events([], guards=[Guard(token, 1)])
    assert _log(recorder) == before


def test_guarded_sqlite_appends_beside_another_writer_all_commit(tmp_path: Path) -> None:
    """Two recorders on one SQLite file (two processes: a server and its projection child)
    append at once; the guarded appends write before they read, so none is refused with
    "database is locked" (a transaction that reads first cannot become a writer once
    another connection has committed)."""
    path = str(tmp_path / "events.db")
    stores = [SQLiteDatastore(path), SQLiteDatastore(path)]
    guarded, other = (SealingSQLiteApplicationRecorder(store) for store in stores)
    guarded.create_table()
    try:
        token = _with_token(guarded)
        errors: list[BaseException] = []

        def append(recorder: Recorder, guards: list[Guard]) -> None:
            originator = uuid.uuid4()
            try:
                for version in range(1, 501):
                    recorder.insert_events([_event(originator, version, "x")], guards=guards)
            except Exception as error:
                errors.append(error)

        threads = [
            threading.Thread(target=append, args=(guarded, [Guard(token, 1)])),
            threading.Thread(target=append, args=(other, [])),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert len(_log(guarded)) == 1 + 2 * 500
        _assert_seals_verify(guarded, SqlDatabase(stores[0]))
    finally:
        for store in stores:
            store.close()
