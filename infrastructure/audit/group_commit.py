"""Group commit: concurrent appends share one transaction, one table lock and one commit.

eventsourcing's PostgreSQL recorder takes ``LOCK TABLE … IN EXCLUSIVE MODE`` for every
append so that positions are issued in commit order (a subscriber can then never pass a
position that commits later). That lock makes appends run one at a time. Instead of
dropping the lock, we make each turn under it do more: while one transaction holds it,
the appends that arrive queue up, and the next transaction takes all of them.

A caller in a thread that finds nobody committing becomes the leader and commits batches
until its own append is done; then it hands over to a waiting caller. A caller on an event
loop (:meth:`GroupCommit.submit_at_once`) cannot wait on a commit: its append is queued, and
when nobody is committing, a thread of the group's own leads until the queue is empty. Each
caller gets exactly the outcome of its own append: its positions, or its own error (an
append that conflicts fails alone; the others in its batch still commit). The loop's
callers a batch decided are woken together, with one call into their loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from eventsourcing.persistence import ProgrammingError, StoredEvent

from application.ports import Guard


class Append:
    """One caller's append, and its outcome once a batch has decided it."""

    __slots__ = ("awaited", "done", "error", "events", "guards", "ids", "wake")

    def __init__(
        self,
        events: Sequence[StoredEvent],
        guards: Sequence[Guard] = (),
        awaited: asyncio.Future[None] | None = None,
    ) -> None:
        self.events = events
        self.guards = guards  # aggregates the append relies on; it fails if one moved on
        self.ids: list[int] | None = None
        self.error: BaseException | None = None
        self.done = False
        self.wake = threading.Event()  # set when decided, or when asked to lead
        self.awaited = awaited  # a loop's caller: resolved (in its loop) when decided

    def fail(self, error: BaseException) -> None:
        """Decide this append as failed (unless a batch decided it already)."""
        if self.ids is None and self.error is None:
            self.error = error


class GroupCommit:
    """Queues appends and lets one caller at a time commit them in batches.

    Each waiting caller sleeps on an event of its own: finishing a batch wakes exactly the
    callers it decided, and handing over wakes exactly one (no thundering herd).
    """

    def __init__(self, commit: Callable[[list[Append]], None], max_batch: int = 256) -> None:
        self._commit = commit
        self._max_batch = max_batch
        self._lock = threading.Lock()
        self._queue: deque[Append] = deque()
        self._leading = False
        self._leader: ThreadPoolExecutor | None = None  # leads for the loops' callers
        self.appends = 0  # appends submitted
        self.batches = 0  # batches committed (or failed)

    def submit(self, events: Sequence[StoredEvent], guards: Sequence[Guard] = ()) -> list[int]:
        """Append ``events`` atomically and return their positions, or raise its error
        (:class:`~application.ports.StaleGuard` when a guard's aggregate moved on)."""
        item = Append(events, guards)
        with self._lock:
            self.appends += 1
            self._queue.append(item)
            lead = not self._leading
            self._leading = True
        if not lead:
            item.wake.wait()
        if not item.done:  # leading: from the start, or handed over
            try:
                while not item.done:
                    self._run_one_batch(item)
            finally:
                self._hand_over()
        return _outcome(item)

    async def submit_at_once(
        self, events: Sequence[StoredEvent], guards: Sequence[Guard] = ()
    ) -> list[int]:
        """:meth:`submit` for a caller on an event loop, which waits without a thread.
        Cancelling the wait does not withdraw the append: it is decided all the same."""
        item = Append(events, guards, asyncio.get_running_loop().create_future())
        with self._lock:
            self.appends += 1
            self._queue.append(item)
            lead = not self._leading
            self._leading = True
        if lead:
            self._lead_in_background()
        assert item.awaited is not None
        await item.awaited
        return _outcome(item)

    def _lead_in_background(self) -> None:
        if self._leader is None:
            self._leader = ThreadPoolExecutor(1, thread_name_prefix="group-commit")
        self._leader.submit(self._lead_until_empty)

    def _lead_until_empty(self) -> None:
        while True:
            with self._lock:
                if not self._queue:
                    self._leading = False
                    return
            self._run_one_batch(None)

    def _run_one_batch(self, mine: Append | None) -> None:
        with self._lock:
            size = min(len(self._queue), self._max_batch)
            batch = [self._queue.popleft() for _ in range(size)]
            self.batches += 1
        try:
            self._commit(batch)
        except BaseException as error:
            for append in batch:
                append.fail(error)
        finally:
            awaited: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
            for append in batch:
                if append.ids is None and append.error is None:
                    append.error = RuntimeError("the batch decided nothing for this append")
                append.done = True
                if append.awaited is not None:
                    awaited.setdefault(append.awaited.get_loop(), []).append(append.awaited)
                elif append is not mine:
                    append.wake.set()
            for loop, futures in awaited.items():
                _call_into(loop, futures)

    def _hand_over(self) -> None:
        with self._lock:
            if not self._queue:
                self._leading = False
            elif self._queue[0].awaited is None:
                self._queue[0].wake.set()  # undecided, so it wakes to lead
            else:
                self._lead_in_background()


def _call_into(loop: asyncio.AbstractEventLoop, futures: list[asyncio.Future[None]]) -> None:
    """Resolve a loop's futures in that loop (a loop already closed has nobody waiting)."""
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(_resolve, futures)


def _resolve(futures: list[asyncio.Future[None]]) -> None:
    for future in futures:
        if not future.done():  # a cancelled wait
            future.set_result(None)


def library_path_unguarded(
    stored_events: Sequence[StoredEvent], kwargs: dict[str, Any]
) -> Sequence[Guard] | None:
    """Of an ``insert_events`` call's keyword arguments, take out ``guards`` (see
    :class:`~application.ports.Guard`) and return them, for a group-committed append;
    or None when the append is for the library's own path instead: tracking records and
    empty appends (applications always pass ``tracking``, as None when there is nothing
    to track). Guards on that path are a mistake of the caller's, refused."""
    guards: Sequence[Guard] = kwargs.pop("guards", None) or ()
    if stored_events and all(value is None for value in kwargs.values()):
        return guards
    if guards:
        msg = "guards are only checked on appends of events without tracking"
        raise ProgrammingError(msg)
    return None


def _outcome(item: Append) -> list[int]:
    if item.error is not None:
        # Several callers may share one batch-wide error: each raises its own copy, so no
        # two threads add tracebacks to the same object.
        raise copy.copy(item.error) from item.error
    assert item.ids is not None
    return item.ids
