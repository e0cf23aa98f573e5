"""A subscription for eventsourcing's SQLite recorder, which has none in 9.5.

It reuses the library's pull machinery (:class:`ListenNotifySubscription`): what is missing
is only the wake-up. Writers in this process wake subscribers at once; writers in other
processes are noticed by polling, every ``poll_interval`` seconds.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from eventsourcing.persistence import ListenNotifySubscription, StoredEvent, Subscription
from eventsourcing.sqlite import SQLiteApplicationRecorder

POLL_INTERVAL = 0.05


class SubscribableSQLiteApplicationRecorder(SQLiteApplicationRecorder):
    """The library's SQLite application recorder, plus :meth:`subscribe`."""

    poll_interval = POLL_INTERVAL

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._listeners: set[threading.Event] = set()
        self._listeners_lock = threading.Lock()

    def subscribe(
        self, gt: int | None = None, topics: Sequence[str] = ()
    ) -> Subscription[SQLiteApplicationRecorder]:
        """Iterate over notifications after ``gt``, blocking for new ones."""
        return SQLiteSubscription(self, gt=gt, topics=topics)

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        """Record events, then wake this process's subscribers."""
        ids = super().insert_events(stored_events, **kwargs)
        self._wake()
        return ids

    def listen(self, event: threading.Event) -> None:
        """Have ``event`` set whenever this process records events."""
        with self._listeners_lock:
            self._listeners.add(event)

    def unlisten(self, event: threading.Event) -> None:
        """Stop setting ``event``."""
        with self._listeners_lock:
            self._listeners.discard(event)

    def _wake(self) -> None:
        with self._listeners_lock:
            for listener in self._listeners:
                listener.set()


class SQLiteSubscription(ListenNotifySubscription[SubscribableSQLiteApplicationRecorder]):
    """Pulls new notifications when woken by a local writer or by the poll timer."""

    def __init__(
        self,
        recorder: SubscribableSQLiteApplicationRecorder,
        gt: int | None = None,
        topics: Sequence[str] = (),
    ) -> None:
        super().__init__(recorder=recorder, gt=gt, topics=topics)
        self._stopped = threading.Event()
        recorder.listen(self._has_been_notified)
        self._poll_thread = threading.Thread(target=self._poll, daemon=True)
        self._poll_thread.start()

    def _poll(self) -> None:
        while not self._stopped.wait(self._recorder.poll_interval):
            self._has_been_notified.set()

    def stop(self) -> None:
        """Stop pulling and polling."""
        self._stopped.set()
        self._recorder.unlisten(self._has_been_notified)
        super().stop()

    def __exit__(self, *args: object, **kwargs: Any) -> None:
        try:
            super().__exit__(*args, **kwargs)
        finally:
            self._poll_thread.join()
