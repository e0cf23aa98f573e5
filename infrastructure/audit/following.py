"""Following the log that other processes append to, so this process's guesses hold.

A process serving requests keeps two guesses it acts on without a read: the sessions it last
saved or loaded (a command decides on its cached copy; see :mod:`application.unit_of_work`)
and the chain heads it last wrote (a batch is sealed from them; see
:mod:`infrastructure.audit.known_heads`). When several processes write one store (``serve
--workers N``, several hosts), every append of another process makes them stale: the next
command on that session loses its append to the version check and is decided again in a
thread, and the next batch loses a round trip to the heads check.

The follower listens on the log's channel (every append notifies it, under the table lock
that orders the log), reads what was appended after the position it has reached, with each
event's seal, and hands both on: the heads to the recorder's guesses, the events to the
cache of sessions. It only improves guesses: the append's checks still decide, so an event
followed late costs the retry it would have cost anyway, never a wrong answer.
PostgreSQL only: on SQLite a batch reads the heads under the write lock, and several
processes writing one SQLite file is not a deployment we tune for.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

from eventsourcing.persistence import Notification
from psycopg.sql import SQL, Identifier

from infrastructure.audit.recorders import SealingPostgresApplicationRecorder
from infrastructure.outage import store_unavailable

logger = logging.getLogger(__name__)

READ_LIMIT = 500  # events per read while catching up
GATHER_SECONDS = 0.01  # after a notification, wait so one read takes what follows it too
IDLE_SECONDS = 1.0  # read anyway this often when nothing notifies (a notification lost)
RETRY_SECONDS = 1.0  # after an error (the store unreachable), before listening again


class LogFollower:
    """A daemon thread that follows the log from where it was when the follower started."""

    def __init__(
        self,
        recorder: SealingPostgresApplicationRecorder,
        apply: Callable[[Sequence[Notification]], int],
        *,
        gather_seconds: float = GATHER_SECONDS,
    ) -> None:
        self._recorder = recorder
        self._apply = apply
        self.gather_seconds = gather_seconds
        self.position: int | None = None  # the last position read and applied
        self.applied = 0  # events ``apply`` took (another process's, of a cached session)
        self.last_error: str | None = None
        self._stopping = threading.Event()
        self._advanced = threading.Condition()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start following, from the log's current end."""
        self._thread = threading.Thread(target=self._run, name="log-follower", daemon=True)
        self._thread.start()

    @property
    def started(self) -> bool:
        """Whether :meth:`start` was called."""
        return self._thread is not None

    def stop(self, timeout: float = 5.0) -> None:
        """Stop, and wait for the thread."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def wait_for(self, position: int, timeout: float) -> bool:
        """Wait until the follower has applied the log up to ``position``; whether it has."""
        with self._advanced:
            return self._advanced.wait_for(
                lambda: self.position is not None and self.position >= position, timeout
            )

    def _run(self) -> None:
        listen = SQL("LISTEN {0}").format(Identifier(self._recorder.channel_name))
        while not self._stopping.is_set():
            try:
                with self._recorder.datastore.get_connection() as conn:
                    conn.execute(listen)
                    try:
                        if self.position is None:
                            self._advance(self._recorder.max_notification_id() or 0)
                        while not self._stopping.is_set():
                            self._catch_up()
                            for _ in conn.notifies(timeout=IDLE_SECONDS, stop_after=1):
                                pass
                            if self._stopping.wait(self.gather_seconds):
                                break
                            for _ in conn.notifies(timeout=0):
                                pass  # those came while we gathered: one read covers them
                    finally:
                        conn.execute("UNLISTEN *")  # the connection goes back to the pool
                self.last_error = None
            except Exception as error:
                self.last_error = f"{type(error).__name__}: {error}"
                if store_unavailable(error):
                    logger.warning("log follower: store unavailable; retrying in %ss: %s",
                                   RETRY_SECONDS, " ".join(str(error).split())[:200])  # fmt: skip
                else:
                    logger.exception("log follower failed; retrying in %ss", RETRY_SECONDS)
                self._stopping.wait(RETRY_SECONDS)

    def _catch_up(self) -> None:
        assert self.position is not None
        while True:
            events = self._recorder.follow(self.position, READ_LIMIT)
            if events:
                self.applied += self._apply(events)
                self._advance(events[-1].id)
            if len(events) < READ_LIMIT:
                return

    def _advance(self, position: int) -> None:
        with self._advanced:
            self.position = position
            self._advanced.notify_all()
