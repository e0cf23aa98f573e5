"""How every session command runs: load, expire what is due, decide, render, save, retry.

A command is an *action*: given the loaded session and a :class:`CommandScope`, it calls the
aggregate's commands and returns a :class:`Decision`: :class:`Changed` (a typed result, and
other aggregates to save with the session) or :class:`Refused` (an error to raise once the
facts recorded on the way, such as a failed code, are saved). :meth:`UnitOfWork.run` returns
the result with the session's document in a :class:`Done`.

A command first decides on the session as this process last saw it, without reading the
store: the append's version check confirms that guess in the same round trip (one round trip
per command in the common case). When another writer saved the same session first (two tabs
switching at once, another process), the append conflicts and the command reloads and reruns,
within a bound, then gives up with ConcurrentModification rather than lose an update. A
decision that would save nothing of the session (a refusal, a no-op, another aggregate only)
has no append to confirm it, so it is made again on the session read from the store. Within
one process, commands on one session take turns on a lock, so two tabs served by the same
process queue rather than collide.

Where the recorder can append without holding a thread, :meth:`UnitOfWork.run_at_once`
runs the common case on the event loop: the guess decided, rendered from memory and appended,
the loop free while the batch commits (a snapshot it makes due is written from a thread
after). Anything else (no guess, a refusal, a conflict, a directory read, the session's lock
taken) leaves it to :meth:`UnitOfWork.run` in a thread, from the start: nothing of the
attempt was saved.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeAlias, TypeVar

from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError

from application.errors import ConcurrentModification
from application.policy import SessionPolicy
from application.ports import Clock, Directory, Guard, OutOfStep, StaleGuard
from application.read_model import SessionDocument, rendering_from_memory, session_document
from application.sessions import SessionsApp
from domain.errors import DomainError, SessionLedgerError
from domain.session import Session

R = TypeVar("R")


@dataclass(frozen=True)
class Changed(Generic[R]):
    """The action went through: its result, and the other aggregates to save with it."""

    result: R
    save_with: Sequence[Aggregate] = ()


@dataclass(frozen=True)
class Refused:
    """The action refused, yet recorded a fact (a wrong password or code) on the session:
    the session is saved, then ``error`` is raised."""

    error: SessionLedgerError


Decision: TypeAlias = Changed[R] | Refused


@dataclass(frozen=True)
class Done(Generic[R]):
    """A command's result and the session as it answers it (rendered before the save)."""

    result: R
    document: SessionDocument


class StaleRead(Exception):
    """Raised inside an action when what it read has already changed; the action reruns."""


class _Unconfirmed(Exception):
    """Raised when a decision made on the cached session has no append to confirm it."""


class _Guarded:
    """A run's guards, and whether an append of the run has confirmed them."""

    def __init__(self, guards: Sequence[Guard]) -> None:
        self.guards = guards
        self.confirmed = False


class CommandScope:
    """One run of an action: its time, and the locks it holds until the run ends."""

    def __init__(self, now: datetime, held: contextlib.ExitStack) -> None:
        self.now = now
        self._held = held

    def hold(self, lock: threading.Lock) -> None:
        """Take ``lock`` until this run of the action is saved or abandoned."""
        self._held.enter_context(lock)


class _NoLocks(CommandScope):
    """The scope of a run on the event loop, which must not wait on a lock: an action that
    asks for one is refused, and the command runs in a thread instead."""

    def hold(self, lock: threading.Lock) -> None:
        """Refuse: the loop cannot wait."""
        raise _NeedsThread


class _NeedsThread(Exception):
    """An action on the event loop asked for something only a thread can wait for."""


Action = Callable[[Session, CommandScope], Decision[R]]


class UnitOfWork:
    """Runs actions on sessions: load, decide, save, with retries on concurrent writes."""

    def __init__(
        self, app: SessionsApp, clock: Clock, directory: Directory, policy: SessionPolicy
    ) -> None:
        self.app = app
        self.clock = clock
        self.directory = directory
        self.policy = policy
        self.conflicts = 0  # runs that lost to another writer, or to a stale guess
        self.decided_at_once = 0  # commands run_at_once saved (no thread held)

    def start(self, make: Callable[[datetime], tuple[Session, Changed[R]]]) -> Done[R]:
        """Save a session that ``make`` creates (with its result), drawing again on an id
        collision."""
        for _ in range(self.policy.command_retries):
            now = self.clock.now()
            session, changed = make(now)
            document = self.render(session, now)  # before the save, as in :meth:`run`
            try:
                self._save(session, *changed.save_with)
            except IntegrityError:
                continue  # an id collision: draw again
            return Done(changed.result, document)
        raise ConcurrentModification

    async def run_at_once(
        self, session_id: int, action: Action[R], guards: Sequence[Guard]
    ) -> Done[R] | None:
        """:meth:`run` on the event loop for the common case: the action changes the cached
        session without a refusal, taking no lock of its own, and the document renders from
        memory. None when it cannot (the caller then runs :meth:`run` in a thread): nothing
        was saved. StaleGuard or a conflict also give None; other errors of the append
        (the store unreachable) are raised."""
        lock = self.app.session_locks.get(session_id)
        if not lock.acquire(blocking=False):  # a command on it in a thread, or on the loop
            return None
        try:
            session = self.app.cached_session(session_id)
            if session is None:
                return None
            now = self.clock.now()
            session.expire_sign_ins(now, self.policy.idle_timeout)
            try:
                decision = action(session, _NoLocks(now, contextlib.ExitStack()))
            except (SessionLedgerError, _NeedsThread):
                return None  # decided again in the thread, on the stored session
            if not isinstance(decision, Changed) or decision.save_with:
                return None
            if not session.pending_events:
                return None
            if rendering_from_memory(session, self.directory, now) is None:
                return None  # the document needs a read
            document = self.render(session, now)
            try:
                await self.app.save_at_once(session, guards)
            except IntegrityError:
                self.conflicts += 1
                self.app.forget(session_id)  # the thread then starts from the stored session
                return None
            except StaleGuard:
                return None  # the cookie changed: the thread resolves it in full
            self.app.remember(session)
            self.decided_at_once += 1
            return Done(decision.result, document)
        finally:
            lock.release()

    def run(self, session_id: int, action: Action[R], guards: Sequence[Guard] = ()) -> Done[R]:
        """Decide on the cached guess; then, if it is not confirmed or loses to another
        writer, load, act and save, up to ``command_retries`` times (the guess is not one).

        With ``guards`` (aggregates the command relies on, such as the cookie token that
        authorised it), the command holds only while they are unchanged: its append is
        refused otherwise, and a run that appended nothing checks them with a read. Either
        way StaleGuard is raised instead of the command's answer or error."""
        guarded = _Guarded(guards)
        try:
            done = self._run(session_id, action, guarded)
        except SessionLedgerError:
            self._confirm(guarded)  # a refusal tells of the session too
            raise
        self._confirm(guarded)
        return done

    def _confirm(self, guarded: _Guarded) -> None:
        if guarded.guards and not guarded.confirmed:
            self.app.check_guards(guarded.guards)

    def _run(self, session_id: int, action: Action[R], guarded: _Guarded) -> Done[R]:
        with self.app.session_locks.get(session_id):
            try:
                return self._run_once(session_id, action, guarded, guess=True)
            except _Unconfirmed:
                pass  # decide again, on the stored session
            except (IntegrityError, StaleRead) as error:
                self._lost(session_id, error)
            for attempt in range(self.policy.command_retries):
                try:
                    return self._run_once(session_id, action, guarded, guess=False)
                except (IntegrityError, StaleRead) as error:
                    self._lost(session_id, error)
                    # Exponential backoff with full jitter, so contenders from other
                    # processes stop arriving together.
                    time.sleep(random.uniform(0, min(0.05, 0.001 * 2**attempt)))
        raise ConcurrentModification

    def _lost(self, session_id: int, error: Exception) -> None:
        """Count a run that lost to another writer; when its copy of the session may be
        ahead of the store (OutOfStep), drop it, so the next run reads the session whole
        rather than fast-forwarding that copy."""
        self.conflicts += 1
        if isinstance(error, OutOfStep):
            self.app.forget(session_id)

    def _run_once(
        self, session_id: int, action: Action[R], guarded: _Guarded, guess: bool
    ) -> Done[R]:
        with contextlib.ExitStack() as held:  # the locks the action takes end with this run
            cached = self.app.cached_session(session_id) if guess else None
            session = cached or self.app.load_session(session_id)
            now = self.clock.now()
            session.expire_sign_ins(now, self.policy.idle_timeout)
            try:
                decision = action(session, CommandScope(now, held))
            except DomainError:
                if cached is not None:
                    raise _Unconfirmed from None  # a refusal the session's state decided
                self._save_quietly(session, guarded)  # the expiries noticed are still facts
                raise
            except SessionLedgerError:
                self._save_quietly(session, guarded)  # a refusal of the request itself
                raise
            if cached is not None and (isinstance(decision, Refused) or not session.pending_events):
                raise _Unconfirmed
            if isinstance(decision, Refused):
                if session.pending_events:
                    self._save(session, guarded=guarded)
                raise decision.error
            # The answer is rendered before the save: once the events are committed, the
            # command answers from them without another read that could fail.
            document = self.render(session, now)
            if session.pending_events or decision.save_with:
                self._save(session, *decision.save_with, guarded=guarded)
            return Done(decision.result, document)

    def render(self, session: Session, now: datetime) -> SessionDocument:
        """The session right after a command: the state the command saved, which the
        projection folds from the same events with the same ``mutate``."""
        return session_document(session, self.directory, now)

    def _save(self, session: Session, *others: Aggregate, guarded: _Guarded | None = None) -> None:
        """Save, and keep what was saved as this process's next guess of the session."""
        if guarded is not None and guarded.guards:
            self.app.save(session, *others, guards=guarded.guards)
            guarded.confirmed = True
        else:
            self.app.save(session, *others)
        self.app.remember(session)

    def _save_quietly(self, session: Session, guarded: _Guarded) -> None:
        if session.pending_events:
            # Whoever won the race has seen (or will see) the same expiries.
            with contextlib.suppress(IntegrityError):
                self._save(session, guarded=guarded)
