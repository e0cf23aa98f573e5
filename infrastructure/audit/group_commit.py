"""Group commit: concurrent appends share one transaction, one table lock and one commit.

eventsourcing's PostgreSQL recorder takes ``LOCK TABLE … IN EXCLUSIVE MODE`` for every
append so that positions are issued in commit order (a subscriber can then never pass a
position that commits later). That lock makes appends run one at a time. Instead of
dropping the lock, we make each turn under it do more: while one transaction holds it,
the appends that arrive queue up, and the next transaction takes all of them.

There is no background thread. The first caller to find nobody committing becomes the
leader and commits batches until its own append is done; then it hands over to a waiting
caller. Each caller gets exactly the outcome of its own append: its positions, or its own
error (an append that conflicts fails alone; the others in its batch still commit).
"""

from __future__ import annotations

import copy
import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from eventsourcing.persistence import ProgrammingError, StoredEvent

from application.ports import Guard


class Append:
    """One caller's append, and its outcome once a batch has decided it."""

    __slots__ = ("done", "error", "events", "guards", "ids", "wake")

    def __init__(self, events: Sequence[StoredEvent], guards: Sequence[Guard] = ()) -> None:
        self.events = events
        self.guards = guards  # aggregates the append relies on; it fails if one moved on
        self.ids: list[int] | None = None
        self.error: BaseException | None = None
        self.done = False
        self.wake = threading.Event()  # set when decided, or when asked to lead

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

    def _run_one_batch(self, mine: Append) -> None:
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
            for append in batch:
                if append.ids is None and append.error is None:
                    append.error = RuntimeError("the batch decided nothing for this append")
                append.done = True
                if append is not mine:
                    append.wake.set()

    def _hand_over(self) -> None:
        with self._lock:
            if self._queue:
                self._queue[0].wake.set()  # undecided, so it wakes to lead
            else:
                self._leading = False


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
