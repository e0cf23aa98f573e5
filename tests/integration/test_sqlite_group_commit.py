"""Group commit of SQLite appends: concurrent appends share a transaction and its fsync, each
caller gets its own outcome, a conflicting append fails alone, and every seal verifies.

Through ``SealingSQLiteApplicationRecorder`` on a real SQLite file (WAL, synchronous FULL):
many threads appending at once (some batches carry several appends), a race for one version
(exactly one wins), an application's saves (which pass ``tracking=None``) taking
that path, and one batch mixing good and conflicting appends (each conflicting one
rolled back to its own savepoint, the others committed).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.persistence import IntegrityError
from eventsourcing.sqlite import SQLiteDatastore

from infrastructure.audit.group_commit import Append
from infrastructure.audit.sealing import SealingSQLiteApplicationRecorder
from infrastructure.sql import SqlDatabase
from tests.helpers import services_for
from tests.integration.test_recorders import _assert_seals_verify
from tests.unit.test_group_commit import _assert_contiguous, _event, _run_threads


class _CountingRecorder(SealingSQLiteApplicationRecorder):
    """The recorder under test, counting the appends in each of its batches."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.batch_sizes: list[int] = []

    def _commit_batch(self, batch: list[Append]) -> None:
        self.batch_sizes.append(len(batch))
        super()._commit_batch(batch)


@pytest.fixture
def recorder(tmp_path: Path) -> Iterator[_CountingRecorder]:
    datastore = SQLiteDatastore(str(tmp_path / "events.db"))
    made = _CountingRecorder(datastore)
    made.create_table()
    try:
        yield made
        _assert_seals_verify(made, SqlDatabase(datastore))
    finally:
        datastore.close()


def _log(recorder: SealingSQLiteApplicationRecorder) -> list[tuple[int, UUID, int, bytes]]:
    return [
        (n.id, UUID(str(n.originator_id)), n.originator_version, n.state)
        for n in recorder.select_notifications(start=1, limit=10**6)
    ]


def test_concurrent_appends_share_commits_and_keep_their_own_positions(
    recorder: _CountingRecorder,
) -> None:
    threads, appends = 8, 25
    results: dict[tuple[int, int], tuple[UUID, list[int], int]] = {}
    lock = threading.Lock()

    def work(index: int) -> None:
        for number in range(appends):
            originator = uuid.uuid4()
            size = 1 + (index + number) % 3
            events = [_event(originator, v, f"{index}-{number}-{v}") for v in range(1, size + 1)]
            ids = _assert_contiguous(recorder.insert_events(events, tracking=None), size)
            with lock:
                results[index, number] = (originator, ids, size)

    assert _run_threads(threads, work) == []
    log = _log(recorder)
    expected = {
        position: (originator, offset + 1)
        for originator, ids, _ in results.values()
        for offset, position in enumerate(ids)
    }
    assert len(expected) == sum(size for _, _, size in results.values())  # none issued twice
    assert {row[0]: row[1:3] for row in log} == expected
    assert sum(recorder.batch_sizes) == threads * appends
    assert max(recorder.batch_sizes) > 1  # some commit carried several appends


def test_racing_appends_to_one_version_let_exactly_one_win(recorder: _CountingRecorder) -> None:
    originator = uuid.uuid4()
    recorder.insert_events([_event(originator, 1, "created")])
    won: list[int] = []
    lost: list[BaseException] = []
    lock = threading.Lock()

    def work(index: int) -> None:
        try:
            recorder.insert_events([_event(originator, 2, f"racer-{index}")])
        except IntegrityError as error:
            with lock:
                lost.append(error)
        else:
            with lock:
                won.append(index)

    assert _run_threads(10, work) == []
    assert len(won) == 1
    assert len(lost) == 9
    stored = recorder.select_events(originator)
    assert [(e.originator_version, e.state) for e in stored] == [
        (1, b"created"), (2, f"racer-{won[0]}".encode()),
    ]  # fmt: skip


def test_a_batch_commits_its_good_appends_and_fails_only_the_conflicting(
    recorder: _CountingRecorder,
) -> None:
    oa, ob = uuid.uuid4(), uuid.uuid4()
    (first,) = _assert_contiguous(recorder.insert_events([_event(ob, 1, "B-original")]), 1)
    a = Append([_event(oa, 1, "A1"), _event(oa, 2, "A2")])
    b = Append([_event(ob, 2, "B-new"), _event(ob, 1, "B-duplicate")])  # v1 is recorded
    c = Append([_event(oa, 2, "C-duplicate")])  # repeats A, earlier in the same batch
    recorder._commit_batch([a, b, c])

    a_ids = _assert_contiguous(a.ids, 2)
    for failed in (b, c):
        assert failed.ids is None
        assert isinstance(failed.error, IntegrityError), failed.error
    assert _log(recorder) == [
        (first, ob, 1, b"B-original"), (a_ids[0], oa, 1, b"A1"), (a_ids[1], oa, 2, b"A2"),
    ]  # fmt: skip
    _assert_contiguous(recorder.insert_events([_event(ob, 2, "B2")]), 1)


def test_the_applications_saves_take_the_group_commit_path(sqlite_url: str) -> None:
    with services_for(sqlite_url, load_demo=False) as services:
        recorder = services.sessions.recorder
        assert isinstance(recorder, SealingSQLiteApplicationRecorder)
        before = recorder.group.appends
        browser_session = services.commands.start_session()
        assert browser_session.new_token
        assert recorder.group.appends == before + 1
