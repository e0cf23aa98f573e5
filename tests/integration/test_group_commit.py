"""Group commit of PostgreSQL appends: many callers share one transaction, each gets its
own outcome, positions stay unique and in commit order, and every seal still verifies.

Covers ``infrastructure.audit.group_commit`` through ``SealingPostgresApplicationRecorder``
on a real PostgreSQL schema per test (on its own, with no database, it is tested in
tests/unit/test_group_commit.py): concurrent
appends, a race for one version, a batch mixing good and conflicting appends, two
recorders (two "processes") moving each other's chain heads, and originator ids given as
strings.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.persistence import IntegrityError, StoredEvent
from eventsourcing.postgres import PostgresDatastore

from infrastructure.audit.group_commit import Append
from infrastructure.audit.recorders import SealingPostgresApplicationRecorder
from infrastructure.container import build_services
from infrastructure.settings import Settings
from infrastructure.sql import SqlDatabase
from tests.conftest import postgres_datastore
from tests.helpers import services_for
from tests.integration.test_recorders import _assert_seals_verify
from tests.unit.test_group_commit import TIMEOUT, _assert_contiguous, _event, _run_threads

# --- helpers ------------------------------------------------------------------------------


class _CountingRecorder(SealingPostgresApplicationRecorder):
    """The recorder under test, counting its batches, its careful appends and the times
    its one-round-trip append found the chain heads moved."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.batch_sizes: list[int] = []
        self.careful_commits = 0
        self.stale_heads = 0

    def _speculate(self, *args: Any) -> bool | None:
        committed = super()._speculate(*args)
        if committed is None:
            self.stale_heads += 1
        return committed

    def _commit_batch(self, batch: list[Append]) -> None:
        self.batch_sizes.append(len(batch))
        super()._commit_batch(batch)

    def _try_commit(self, live: list[Append]) -> list[Append]:
        self.careful_commits += 1
        return super()._try_commit(live)


@dataclass
class _Schema:
    """A fresh PostgreSQL schema; each datastore on it is like another server process."""

    name: str
    datastores: list[PostgresDatastore] = field(default_factory=list)

    def datastore(self) -> PostgresDatastore:
        datastore = postgres_datastore(self.name)
        self.datastores.append(datastore)
        return datastore

    def recorder(self, datastore: PostgresDatastore | None = None) -> _CountingRecorder:
        recorder = _CountingRecorder(datastore or self.datastore(), events_table_name="events")
        recorder.create_table()
        return recorder


@pytest.fixture
def schema(postgres_schema: str) -> Iterator[_Schema]:
    """The fresh schema, every datastore on it closed after the test (before it is dropped)."""
    created = _Schema(postgres_schema)
    try:
        yield created
    finally:
        for datastore in created.datastores:
            datastore.close()


def _verify(recorder: SealingPostgresApplicationRecorder) -> None:
    _assert_seals_verify(recorder, SqlDatabase(recorder.datastore))


def _log(recorder: SealingPostgresApplicationRecorder) -> list[tuple[int, UUID, int, bytes]]:
    """The whole application log: (position, originator, version, payload)."""
    return [
        (n.id, UUID(str(n.originator_id)), n.originator_version, n.state)
        for n in recorder.select_notifications(start=1, limit=10**6)
    ]


# --- 1. many concurrent appends to new originators ------------------------------------------


def test_concurrent_appends_each_get_their_own_contiguous_positions(schema: _Schema) -> None:
    recorder = schema.recorder()
    threads, appends = 16, 30
    results: dict[tuple[int, int], tuple[list[StoredEvent], list[int]]] = {}
    lock = threading.Lock()

    def work(index: int) -> None:
        for number in range(appends):
            originator = uuid.uuid4()
            size = 1 if (index + number) % 2 else 3
            events = [
                _event(originator, version, f"{index}-{number}-{version}")
                for version in range(1, size + 1)
            ]
            ids = _assert_contiguous(recorder.insert_events(events), size)
            with lock:
                results[index, number] = (events, ids)

    assert _run_threads(threads, work) == []
    assert len(results) == threads * appends

    expected: dict[int, tuple[UUID, int, bytes]] = {}
    for events, ids in results.values():
        for event, position in zip(events, ids, strict=True):
            assert position not in expected, f"position {position} issued twice"
            expected[position] = (
                UUID(str(event.originator_id)),
                event.originator_version,
                event.state,
            )
    assert len(expected) == sum(len(events) for events, _ in results.values())

    log = _log(recorder)
    assert [row[0] for row in log] == sorted(expected)
    assert {row[0]: row[1:] for row in log} == expected
    # The appends were actually grouped: some transaction carried several of them.
    assert max(recorder.batch_sizes) > 1
    assert sum(recorder.batch_sizes) == threads * appends
    _verify(recorder)


# --- 2. a race for one version of one originator -------------------------------------------


def _race(
    recorder: SealingPostgresApplicationRecorder, originator: UUID, version: int, racers: int
) -> tuple[list[tuple[int, Sequence[int] | None]], list[BaseException]]:
    """``racers`` threads append ``version`` at once: who won (and where), and what the
    others raised."""
    won: list[tuple[int, Sequence[int] | None]] = []
    lost: list[BaseException] = []
    lock = threading.Lock()

    def work(index: int) -> None:
        event = _event(originator, version, f"racer-{index}-v{version}")
        try:
            ids = recorder.insert_events([event])
        except IntegrityError as error:
            with lock:
                lost.append(error)
        else:
            with lock:
                won.append((index, ids))

    assert _run_threads(racers, work) == []
    return won, lost


def test_racing_appends_to_one_version_let_exactly_one_win(schema: _Schema) -> None:
    recorder = schema.recorder()
    originator = uuid.uuid4()
    recorder.insert_events([_event(originator, 1, "created")])
    racers = 12
    winners: dict[int, str] = {}
    for version in range(2, 6):  # several rounds: the losers meet both ways of failing
        won, lost = _race(recorder, originator, version, racers)
        assert len(won) == 1, won
        assert len(lost) == racers - 1
        assert all(isinstance(error, IntegrityError) for error in lost)
        _assert_contiguous(won[0][1], 1)
        winners[version] = f"racer-{won[0][0]}-v{version}"

    stored = recorder.select_events(originator)
    assert [e.originator_version for e in stored] == [1, 2, 3, 4, 5]
    assert [e.state.decode() for e in stored[1:]] == [winners[v] for v in range(2, 6)]
    assert len(_log(recorder)) == 5
    _verify(recorder)


# --- 3. one batch mixing good and conflicting appends -------------------------------------


def test_a_batch_commits_its_good_appends_and_fails_only_the_conflicting(
    schema: _Schema,
) -> None:
    recorder = schema.recorder()
    oa, ob, oc = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    (stored,) = _assert_contiguous(recorder.insert_events([_event(ob, 1, "B-original")]), 1)

    a = Append([_event(oa, 1, "A1")])
    b = Append([_event(ob, 2, "B-new"), _event(ob, 1, "B-duplicate")])  # v1 is recorded
    c = Append([_event(oc, 1, "C1"), _event(oc, 2, "C2")])
    d = Append([_event(oa, 1, "D-duplicate")])  # repeats A, earlier in the same batch
    e = Append([_event(oc, 3, "E-1"), _event(oc, 3, "E-2")])  # repeats itself
    recorder._commit_batch([a, b, c, d, e])

    # B's conflict is with a recorded event: found by a read, and the others committed in
    # one round trip again, without the careful path's table lock across round trips.
    assert recorder.careful_commits == 0
    assert a.error is None
    assert c.error is None
    (a_id,) = _assert_contiguous(a.ids, 1)
    c_ids = _assert_contiguous(c.ids, 2)
    for failed in (b, d, e):
        assert failed.ids is None
        assert isinstance(failed.error, IntegrityError), failed.error

    log = _log(recorder)
    assert log == sorted(
        [
            (stored, ob, 1, b"B-original"),
            (a_id, oa, 1, b"A1"),
            (c_ids[0], oc, 1, b"C1"),
            (c_ids[1], oc, 2, b"C2"),
        ]
    )
    payloads = {row[3] for row in log}
    assert payloads.isdisjoint({b"B-new", b"B-duplicate", b"D-duplicate", b"E-1", b"E-2"})
    _verify(recorder)

    # The recorder's idea of the chain heads survived the failed appends.
    _assert_contiguous(recorder.insert_events([_event(oa, 2, "A2")]), 1)
    _assert_contiguous(recorder.insert_events([_event(ob, 2, "B2")]), 1)
    assert len(_log(recorder)) == 6
    _verify(recorder)


def test_a_batch_of_only_a_conflicting_append_fails_it_and_writes_nothing(
    schema: _Schema,
) -> None:
    recorder = schema.recorder()
    originator = uuid.uuid4()
    recorder.insert_events([_event(originator, 1, "original")])
    before = _log(recorder)

    conflicting = Append([_event(originator, 1, "duplicate")])
    recorder._commit_batch([conflicting])

    assert conflicting.ids is None
    assert isinstance(conflicting.error, IntegrityError), conflicting.error
    assert _log(recorder) == before
    with pytest.raises(IntegrityError):
        recorder.insert_events([_event(originator, 1, "duplicate again")])
    _assert_contiguous(recorder.insert_events([_event(originator, 2, "next")]), 1)
    assert [row[3] for row in _log(recorder)] == [b"original", b"next"]
    _verify(recorder)


# --- 4. another process moves the chain heads ---------------------------------------------


def test_two_processes_appending_to_one_store_keep_the_chains_whole(schema: _Schema) -> None:
    first, second = schema.recorder(), schema.recorder()
    assert first.datastore is not second.datastore
    recorders = (first, second)
    expected: dict[int, tuple[UUID, int, bytes]] = {}
    lock = threading.Lock()

    def append(recorder: _CountingRecorder, events: list[StoredEvent]) -> None:
        ids = _assert_contiguous(recorder.insert_events(events), len(events))
        with lock:
            for event, position in zip(events, ids, strict=True):
                assert position not in expected
                expected[position] = (
                    UUID(str(event.originator_id)),
                    event.originator_version,
                    event.state,
                )

    # One originator, its versions written alternately by the two processes.
    shared = uuid.uuid4()
    for version in range(1, 21):
        append(recorders[version % 2], [_event(shared, version, f"shared-{version}")])
    # The heads each process remembered were stale: the append noticed and tried again.
    assert first.stale_heads >= 1
    assert second.stale_heads >= 1

    # Now concurrently: a second shared originator, still alternating, while other threads
    # on both processes append to their own originators.
    alternating = uuid.uuid4()
    turn = threading.Condition()
    next_version = [1]
    last = 20

    def alternate(side: int) -> None:
        try:
            while True:
                with turn:
                    ready = turn.wait_for(
                        lambda: next_version[0] > last or next_version[0] % 2 == side,
                        timeout=TIMEOUT,
                    )
                    assert ready, "the other process never took its turn"
                    version = next_version[0]
                if version > last:
                    return
                append(recorders[side], [_event(alternating, version, f"alt-{version}")])
                with turn:
                    next_version[0] += 1
                    turn.notify_all()
        except BaseException:
            with turn:
                next_version[0] = last + 1  # release the other side
                turn.notify_all()
            raise

    def work(index: int) -> None:
        if index < 2:
            alternate(index)
            return
        recorder = recorders[index % 2]
        for number in range(15):
            originator = uuid.uuid4()
            size = 1 + number % 2
            append(
                recorder,
                [_event(originator, v, f"{index}-{number}-{v}") for v in range(1, size + 1)],
            )

    stale_before = first.stale_heads + second.stale_heads
    assert _run_threads(10, work) == []
    assert first.stale_heads + second.stale_heads > stale_before

    for recorder in recorders:
        log = _log(recorder)
        assert [row[0] for row in log] == sorted(expected)
        assert {row[0]: row[1:] for row in log} == expected
    assert [e.state for e in first.select_events(shared)] == [
        f"shared-{v}".encode() for v in range(1, 21)
    ]
    assert [e.state for e in second.select_events(alternating)] == [
        f"alt-{v}".encode() for v in range(1, 21)
    ]
    _verify(first)
    _verify(second)


def test_a_stale_session_head_is_caught_even_when_the_global_head_is_current(
    schema: _Schema,
) -> None:
    here, elsewhere = schema.recorder(), schema.recorder()
    originator = uuid.uuid4()
    here.insert_events([_event(originator, 1, "here-1")])
    elsewhere.insert_events([_event(originator, 2, "elsewhere-2")])
    # Another originator: ``here`` finds the global head moved and learns the new one, but
    # still remembers this originator's session head as of version 1.
    here.insert_events([_event(uuid.uuid4(), 1, "other")])
    stale = here.stale_heads
    assert stale >= 1

    _assert_contiguous(here.insert_events([_event(originator, 3, "here-3")]), 1)
    assert here.stale_heads == stale + 1  # the stale session head was noticed
    assert [e.state for e in here.select_events(originator)] == [
        b"here-1",
        b"elsewhere-2",
        b"here-3",
    ]
    _verify(here)


# --- 5. originators this process does not know, and ids given as strings ------------------


def test_an_append_continuing_an_originator_unknown_here_looks_its_head_up(
    schema: _Schema,
) -> None:
    here, elsewhere = schema.recorder(), schema.recorder()
    here.insert_events([_event(uuid.uuid4(), 1, "here knows the global head now")])
    originator = uuid.uuid4()
    elsewhere.insert_events([_event(originator, v, f"elsewhere-{v}") for v in range(1, 5)])

    _assert_contiguous(here.insert_events([_event(originator, 5, "here-5")]), 1)
    # The head lookup gave the true heads: the one-round-trip append succeeded first time.
    assert here.careful_commits == 0
    assert here.stale_heads == 0
    _assert_contiguous(here.insert_events([_event(originator, 6, "here-6")]), 1)
    assert here.careful_commits == 0
    assert here.stale_heads == 0

    assert [e.originator_version for e in here.select_events(originator)] == [1, 2, 3, 4, 5, 6]
    _verify(here)


def test_originator_ids_given_as_strings_on_a_uuid_table_verify(schema: _Schema) -> None:
    recorder, other = schema.recorder(), schema.recorder()
    assert recorder.datastore.originator_id_type == "uuid"
    originator = uuid.uuid4()

    ids = recorder.insert_events([_event(str(originator), v, f"s{v}") for v in (1, 2)])
    _assert_contiguous(ids, 2)
    _assert_contiguous(recorder.insert_events([_event(originator, 3, "u3")]), 1)
    # Unknown to ``other``: its head is looked up, under the string spelling.
    _assert_contiguous(other.insert_events([_event(str(originator), 4, "s4")]), 1)
    _assert_contiguous(recorder.insert_events([_event(str(originator), 5, "s5")]), 1)

    assert [e.originator_version for e in recorder.select_events(originator)] == [1, 2, 3, 4, 5]
    _verify(recorder)


def test_a_batch_mixing_uuid_and_string_originator_ids_commits(schema: _Schema) -> None:
    recorder = schema.recorder()
    as_uuid = Append([_event(uuid.uuid4(), 1, "uuid")])
    as_text = Append([_event(str(uuid.uuid4()), 1, "text")])
    recorder._commit_batch([as_uuid, as_text])
    assert as_uuid.error is None
    assert as_text.error is None
    _assert_contiguous(as_uuid.ids, 1)
    _assert_contiguous(as_text.ids, 1)


def test_the_applications_saves_take_the_group_commit_path(postgres_url: str) -> None:
    """eventsourcing's Application always passes ``tracking=None``; that must not send every
    save down the library's one-append-per-lock path."""
    with services_for(postgres_url, rate_limits=False) as services:
        recorder = services.sessions.recorder
        assert isinstance(recorder, SealingPostgresApplicationRecorder)
        before = recorder.group.appends
        threads = [threading.Thread(target=services.commands.start_session) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert recorder.group.appends - before == 8
        assert recorder.group.batches <= recorder.group.appends
        _assert_seals_verify(recorder, SqlDatabase(recorder.datastore))


def test_processes_starting_together_on_one_store_all_open_it(postgres_url: str) -> None:
    """serve --workers N builds N sets of services at once; each replaces the append
    function, which PostgreSQL refuses to do concurrently ("tuple concurrently updated")
    unless the table creation is serialized."""
    build_services(Settings(database_url=postgres_url)).close()

    def start(_: int) -> None:
        build_services(Settings(database_url=postgres_url)).close()

    for _ in range(3):
        assert [repr(e) for e in _run_threads(6, start)] == []
