"""Group commit on its own, with no database: many callers share one commit, each gets its
own positions or its own error, and leadership passes on whatever a commit does.

``infrastructure.audit.group_commit`` through the PostgreSQL recorder, on a real schema, is
tested in tests/integration/test_group_commit.py (which shares these helpers).
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from uuid import UUID

import pytest
from eventsourcing.persistence import StoredEvent

from infrastructure.audit.group_commit import Append, GroupCommit
from tests.helpers import race

TOPIC = "tests.unit.test_group_commit:Event"
TIMEOUT = 60  # seconds for any thread; a hang is a failure, not a stuck suite


Outcomes = dict[int, BaseException | list[int]]


def _submitting(
    group: GroupCommit, outcomes: Outcomes, state: Callable[[int], str]
) -> Callable[[int], None]:
    """A caller's work: submit the append named ``state(index)``, keep its outcome."""

    def submit(index: int) -> None:
        try:
            outcomes[index] = group.submit(_events(state(index)))
        except Exception as error:
            outcomes[index] = error

    return submit


def _run_threads(count: int, work: Callable[[int], None]) -> list[BaseException]:
    """Run ``work(index)`` in ``count`` threads released together; what they raised."""
    return race(count, work, TIMEOUT)


def _event(originator: UUID | str, version: int, payload: str) -> StoredEvent:
    return StoredEvent(originator, version, TOPIC, payload.encode())


def _wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.001)


def _assert_contiguous(ids: Sequence[int] | None, count: int) -> list[int]:
    assert ids is not None
    ids = list(ids)
    assert len(ids) == count
    assert ids == list(range(ids[0], ids[0] + count)), ids
    return ids


class _FakeStore:
    """A commit function that records its batches and issues positions, one at a time."""

    def __init__(self, pause: float = 0.0) -> None:
        self.pause = pause
        self.lock = threading.Lock()
        self.active = 0
        self.most_active = 0
        self.batch_sizes: list[int] = []
        self.next_position = 1
        self.issued: dict[bytes, list[int]] = {}

    def commit(self, batch: list[Append]) -> None:
        with self.lock:
            self.active += 1
            self.most_active = max(self.most_active, self.active)
            self.batch_sizes.append(len(batch))
        try:
            time.sleep(self.pause)
            self.decide(batch)
        finally:
            with self.lock:
                self.active -= 1

    def decide(self, batch: list[Append]) -> None:
        for append in batch:
            ids = list(range(self.next_position, self.next_position + len(append.events)))
            self.next_position += len(append.events)
            append.ids = ids
            self.issued[append.events[0].state] = ids


class _HeldFirstBatch:
    """A group whose first batch (an opener's one append) is held in its commit function
    until ``callers`` appends have queued behind it, so that they share the next batch."""

    def __init__(self, callers: int) -> None:
        self.callers = callers
        self.calls: list[int] = []  # each batch's size, in order
        self.opened: list[list[int]] = []  # the opener's positions, once it has them
        self.entered = threading.Event()
        self.group: GroupCommit | None = None

    def enter(self, batch: list[Append]) -> None:
        """The commit function's first step: count ``batch``; hold it if it is the first."""
        self.calls.append(len(batch))
        if len(self.calls) == 1:
            self.entered.set()
            group = self.group
            assert group is not None
            _wait_until(lambda: len(group._queue) == self.callers, "the callers queued")

    def run(self, commit: Callable[[list[Append]], None], state: Callable[[int], str]) -> Outcomes:
        """A group on ``commit``: the opener's append, then the callers' ``state(index)``
        appends queued behind it; each caller's outcome."""
        group = self.group = GroupCommit(commit)
        opener = threading.Thread(
            target=lambda: self.opened.append(group.submit(_events("opener"))), daemon=True
        )
        opener.start()
        assert self.entered.wait(TIMEOUT)
        outcomes: Outcomes = {}
        assert _run_threads(self.callers, _submitting(group, outcomes, state)) == []
        opener.join(TIMEOUT)
        assert not opener.is_alive()
        return outcomes


def _events(name: str, count: int = 1) -> list[StoredEvent]:
    originator = uuid.uuid4()
    return [_event(originator, v, name if v == 1 else f"{name}-{v}") for v in range(1, count + 1)]


def test_group_commit_gives_each_caller_its_own_positions_one_commit_at_a_time() -> None:
    store = _FakeStore(pause=0.01)
    group = GroupCommit(store.commit, max_batch=8)
    got: dict[bytes, list[int]] = {}
    lock = threading.Lock()

    def work(index: int) -> None:
        events = _events(f"caller-{index}", 1 + index % 3)
        ids = group.submit(events)
        with lock:
            got[events[0].state] = ids

    assert _run_threads(20, work) == []
    assert len(got) == 20
    assert got == store.issued
    for name, ids in got.items():
        index = int(name.decode().split("-")[1])
        _assert_contiguous(ids, 1 + index % 3)
    every = [p for ids in got.values() for p in ids]
    assert len(every) == len(set(every))
    assert store.most_active == 1
    assert sum(store.batch_sizes) == 20
    assert max(store.batch_sizes) > 1
    assert max(store.batch_sizes) <= 8


def test_a_batch_wide_error_reaches_every_caller_of_that_batch_and_no_other() -> None:
    waiting = 5
    held = _HeldFirstBatch(waiting)

    def commit(batch: list[Append]) -> None:
        held.enter(batch)  # the others queue behind the first batch
        if len(held.calls) == 2:
            raise RuntimeError("the database went away")
        for position, append in enumerate(batch, start=len(held.calls) * 100):
            append.ids = [position]

    outcomes = held.run(commit, lambda i: f"follower-{i}")

    assert held.opened == [[100]]
    assert held.calls == [1, waiting]
    assert len(outcomes) == waiting
    errors = [o for o in outcomes.values() if isinstance(o, BaseException)]
    assert len(errors) == waiting, outcomes
    assert all(type(error) is RuntimeError for error in errors), errors
    assert all(str(error) == "the database went away" for error in errors)
    # Each caller raises its own copy of the one error.
    assert len({id(error) for error in errors}) == waiting
    assert len({id(error.__cause__) for error in errors}) == 1

    # Leadership was handed over: later appends still commit.
    assert held.group is not None
    assert held.group.submit(_events("later")) == [300]
    assert held.calls == [1, waiting, 1]


def test_a_batch_error_after_some_appends_committed_keeps_their_positions() -> None:
    callers = 6
    held = _HeldFirstBatch(callers)

    def commit(batch: list[Append]) -> None:
        held.enter(batch)
        if len(held.calls) == 1:
            batch[0].ids = [1]
            return
        # Like the careful path committing one round, then losing the connection.
        for position, append in enumerate(batch[: callers // 2], start=10):
            append.ids = [position]
        raise RuntimeError("lost the connection")

    outcomes = held.run(commit, lambda i: f"caller-{i}")

    assert held.calls == [1, callers]
    committed = [o for o in outcomes.values() if isinstance(o, list)]
    failed = [o for o in outcomes.values() if isinstance(o, BaseException)]
    assert sorted(committed) == [[10], [11], [12]]
    assert len(failed) == callers - callers // 2
    assert all(type(error) is RuntimeError for error in failed)


def test_a_failing_lone_leader_hands_over_leadership() -> None:
    attempts: list[int] = []

    def commit(batch: list[Append]) -> None:
        attempts.append(len(batch))
        if len(attempts) == 1:
            raise RuntimeError("first commit fails")
        for append in batch:
            append.ids = [len(attempts)]

    group = GroupCommit(commit)
    with pytest.raises(RuntimeError, match="first commit fails"):
        group.submit(_events("one"))
    assert group.submit(_events("two")) == [2]


def test_an_error_for_one_append_fails_only_its_caller() -> None:
    callers = 8
    store = _FakeStore()
    held = _HeldFirstBatch(callers)

    def commit(batch: list[Append]) -> None:
        held.enter(batch)
        store.decide([a for a in batch if a.events[0].state != b"bad"])
        for append in batch:
            if append.events[0].state == b"bad":
                append.error = ValueError("this one conflicts")

    outcomes = held.run(commit, lambda i: "bad" if i == 3 else f"good-{i}")

    assert held.calls == [1, callers]  # the bad append shared its batch with the good ones
    bad = outcomes.pop(3)
    assert type(bad) is ValueError
    assert str(bad) == "this one conflicts"
    for index, outcome in outcomes.items():
        assert outcome == store.issued[f"good-{index}".encode()]


def test_an_append_a_batch_leaves_undecided_fails_rather_than_hangs() -> None:
    def commit(batch: list[Append]) -> None:
        for append in batch:
            if append.events[0].state != b"forgotten":
                append.ids = [1]

    group = GroupCommit(commit)
    with pytest.raises(RuntimeError, match="decided nothing"):
        group.submit(_events("forgotten"))
    assert group.submit(_events("remembered")) == [1]


# Callers on an event loop (submit_at_once) ----------------------------------------------


def test_loop_callers_and_thread_callers_share_batches_and_each_gets_its_own_positions() -> None:
    store = _FakeStore(pause=0.005)
    group = GroupCommit(store.commit, max_batch=16)
    from_threads: dict[bytes, list[int]] = {}
    lock = threading.Lock()

    def in_a_thread(index: int) -> None:
        events = _events(f"thread-{index}")
        ids = group.submit(events)
        with lock:
            from_threads[events[0].state] = ids

    async def on_the_loop() -> dict[bytes, list[int]]:
        names = [f"loop-{i}" for i in range(40)]
        results = await asyncio.gather(*(group.submit_at_once(_events(n)) for n in names))
        return {n.encode(): list(ids) for n, ids in zip(names, results, strict=True)}

    threads = threading.Thread(target=lambda: _run_threads(12, in_a_thread), daemon=True)
    threads.start()
    from_loop = asyncio.run(asyncio.wait_for(on_the_loop(), TIMEOUT))
    threads.join(TIMEOUT)
    assert not threads.is_alive()

    assert {**from_loop, **from_threads} == store.issued
    assert len(store.issued) == 52
    assert store.most_active == 1  # one commit at a time, whoever leads
    assert max(store.batch_sizes) > 1
    assert group.batches == len(store.batch_sizes) < 52


def test_the_loop_runs_on_while_its_append_commits() -> None:
    released = threading.Event()
    committing = threading.Event()

    def commit(batch: list[Append]) -> None:
        committing.set()
        assert released.wait(TIMEOUT)
        for index, append in enumerate(batch, start=1):
            append.ids = [index]

    group = GroupCommit(commit)

    async def scenario() -> list[int]:
        append = asyncio.ensure_future(group.submit_at_once(_events("slow")))
        while not committing.is_set():  # the commit is under way in the group's thread
            await asyncio.sleep(0.001)
        assert not append.done()
        released.set()  # the loop was free to do this: nothing of it waits on the commit
        return list(await append)

    assert asyncio.run(asyncio.wait_for(scenario(), TIMEOUT)) == [1]


def test_a_thread_leader_hands_over_to_an_append_from_the_loop() -> None:
    held = _HeldFirstBatch(1)
    store = _FakeStore()

    def commit(batch: list[Append]) -> None:
        held.enter(batch)  # the loop's append queues behind the opener's batch
        store.decide(batch)

    group = held.group = GroupCommit(commit)
    opener = threading.Thread(target=lambda: held.opened.append(group.submit(_events("opener"))))
    opener.start()
    assert held.entered.wait(TIMEOUT)

    ids = asyncio.run(asyncio.wait_for(group.submit_at_once(_events("from-loop")), TIMEOUT))

    opener.join(TIMEOUT)
    assert held.calls == [1, 1]  # the opener led its own batch only, the group's thread the next
    assert held.opened == [store.issued[b"opener"]]
    assert list(ids) == store.issued[b"from-loop"]
    assert group.submit(_events("later")) == store.issued[b"later"]  # nobody left leading


def test_an_error_for_a_loop_callers_append_reaches_only_that_caller() -> None:
    store = _FakeStore(pause=0.002)

    def commit(batch: list[Append]) -> None:
        store.commit([a for a in batch if a.events[0].state != b"bad"])
        for append in batch:
            if append.events[0].state == b"bad":
                append.error = ValueError("this one conflicts")

    group = GroupCommit(commit)

    async def scenario() -> list[list[int] | BaseException]:
        names = ["good-0", "bad", "good-1", "good-2"]
        return await asyncio.gather(
            *(group.submit_at_once(_events(n)) for n in names), return_exceptions=True
        )

    good_0, bad, good_1, good_2 = asyncio.run(asyncio.wait_for(scenario(), TIMEOUT))
    assert type(bad) is ValueError
    assert str(bad) == "this one conflicts"
    assert [good_0, good_1, good_2] == [store.issued[f"good-{i}".encode()] for i in range(3)]


def test_a_cancelled_wait_does_not_withdraw_the_append() -> None:
    released = threading.Event()
    committing = threading.Event()
    store = _FakeStore()

    def commit(batch: list[Append]) -> None:
        committing.set()
        assert released.wait(TIMEOUT)
        store.decide(batch)

    group = GroupCommit(commit)

    async def scenario() -> None:
        waiting = asyncio.ensure_future(group.submit_at_once(_events("abandoned")))
        while not committing.is_set():
            await asyncio.sleep(0.001)
        waiting.cancel()  # the client went away mid-commit
        released.set()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert list(await group.submit_at_once(_events("next"))) == store.issued[b"next"]

    asyncio.run(asyncio.wait_for(scenario(), TIMEOUT))
    assert b"abandoned" in store.issued  # committed all the same
