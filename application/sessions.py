"""The sessions application: where sessions, cookie tokens and users' contexts are stored.

Only the eventsourcing hooks live here (environment, factory, mapper, transcodings,
snapshots), loading a session by its wire id, and this process's guesses of sessions (the
aggregate cache, each session's lock, what other processes wrote followed into them).
Commands are in :mod:`application.session_commands` and :mod:`application.authentication`,
run by :mod:`application.unit_of_work`; queries in :mod:`application.session_queries`;
cookie tokens in :mod:`application.cookie_tokens`.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
from collections.abc import Iterable, Sequence
from functools import cached_property
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application, ProcessingEvent
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import (
    InfrastructureFactory,
    JSONTranscoder,
    Mapper,
    ProgrammingError,
    Recording,
    StoredEvent,
)
from eventsourcing.utils import Environment, EnvType

from application.errors import Unauthorized
from application.locks import StripedLocks
from application.ports import AppendsAtOnce, Guard, StaleGuard
from application.request_context import ContextMapper
from application.transcodings import DataclassAsDict, RememberedDatetimeAsISO
from domain.ids import aggregate_uuid, snowflake_of
from domain.session import Session
from domain.values import SignIn, SignInAttempt

logger = logging.getLogger(__name__)


class SessionsApp(Application[UUID]):
    """Event-sourced sessions, their cookie tokens, and users' last chosen context."""

    name = "sessions"
    snapshotting_intervals = {Session: 50}  # noqa: RUF012 - the library's class-level API

    def __init__(
        self, env: dict[str, str], *, factory: InfrastructureFactory[Any] | None = None
    ) -> None:
        self._given_factory = factory
        # Commands on one session take turns on its lock, and a cached session is changed
        # in place (fast-forwarded, followed) only under it.
        self.session_locks = StripedLocks()
        super().__init__(env)

    def construct_env(self, name: str, env: EnvType | None = None) -> Environment:
        """Configure only from what we pass, never from stray eventsourcing variables."""
        values = {"IS_SNAPSHOTTING_ENABLED": "y", **dict(env or {})}
        return Environment(name, values)

    def construct_factory(self, env: Environment) -> InfrastructureFactory[Any]:
        """Use the factory the composition root opened (so our tables share its pool)."""
        return self._given_factory or super().construct_factory(env)

    def construct_mapper(self) -> Mapper[UUID]:
        """A mapper that records the current request's context inside each event."""
        return self.factory.mapper(
            transcoder=self.construct_transcoder(), mapper_class=ContextMapper
        )

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        """Also encode the dataclasses that snapshots of sessions hold."""
        super().register_transcodings(transcoder)
        transcoder.register(RememberedDatetimeAsISO())  # in place of the library's, same name
        transcoder.register(DataclassAsDict(SignIn, "session_ledger_sign_in"))
        transcoder.register(DataclassAsDict(SignInAttempt, "session_ledger_sign_in_attempt"))

    def save(self, *objs: Aggregate | None, **kwargs: Any) -> list[Recording[UUID]]:  # type: ignore[override]
        """The library's save, for aggregates only: their pending events are collected
        without the runtime ``Protocol`` checks it makes of every object (``typing``'s
        isinstance on a protocol walks its attributes each time: a tenth of a switch's CPU),
        and snapshots are taken from the saved aggregates rather than read back."""
        processing: ProcessingEvent[UUID] = ProcessingEvent()
        for aggregate in objs:
            if aggregate is not None:
                processing.events.extend(aggregate.collect_events())
                processing.aggregates[aggregate.id] = aggregate
        processing.saved_kwargs.update(kwargs)
        recordings = self._record(processing)
        self._take_snapshots(processing)
        self._notify(recordings)
        return recordings

    @cached_property
    def appends_at_once(self) -> AppendsAtOnce | None:
        """The recorder, if it appends for a caller on an event loop (see
        :meth:`save_at_once`); None where every append holds a thread."""
        recorder: Any = self.recorder
        return recorder if callable(getattr(recorder, "insert_events_at_once", None)) else None

    async def save_at_once(self, session: Session, guards: Sequence[Guard]) -> None:
        """:meth:`save` of one session (guarded) from an event loop, where the recorder
        appends at once (:attr:`appends_at_once`): the events are mapped here, and the append
        waits for its batch without a thread. Raises what the append raised (IntegrityError,
        StaleGuard); the caller keeps the saved session as its next guess. A snapshot the
        events made due is then written from a thread; if that fails it is logged, not
        raised: the events are committed, and a missing snapshot only lengthens a replay."""
        recorder = self.appends_at_once
        if recorder is None:
            msg = "save_at_once needs a recorder that appends at once"
            raise ProgrammingError(msg)
        events = session.collect_events()
        stored = [self.mapper.to_stored_event(event) for event in events]
        await recorder.insert_events_at_once(stored, guards)
        if self.snapshots is not None and self._crossed(events):
            taken = Session.Snapshot.take(session)
            try:
                await asyncio.to_thread(self.snapshots.put, [taken])
            except Exception as error:  # the store went away: the next snapshot is due later
                logger.warning(
                    "snapshot of session %s at version %s not written: %s",
                    snowflake_of(session.id), session.version, type(error).__name__,
                )  # fmt: skip

    def _crossed(self, events: Iterable[Any]) -> set[UUID]:
        """The sessions whose events among ``events`` reached a multiple of the snapshot
        interval."""
        interval = self.snapshotting_intervals[Session]
        return {e.originator_id for e in events if e.originator_version % interval == 0}

    def _take_snapshots(self, processing_event: ProcessingEvent[UUID]) -> None:
        """Snapshot each saved session whose new events reached a multiple of its interval,
        as it stands after them: the state the saved events fold to, already in hand. (The
        library reads the session back from the store and replays it to the multiple.)"""
        if self.snapshots is None:
            return
        crossed = self._crossed(processing_event.events)
        taken = [
            Session.Snapshot.take(aggregate)
            for aggregate_id, aggregate in processing_event.aggregates.items()
            if aggregate_id in crossed and isinstance(aggregate, Session)
        ]
        if taken:
            self.snapshots.put(taken)

    def load_session(self, session_id: int) -> Session:
        """The session with that wire id, or Unauthorized (a cookie that opens nothing)."""
        try:
            session: Aggregate = self.repository.get(
                aggregate_uuid(session_id), projector_func=_fold
            )
        except AggregateNotFoundError:
            raise Unauthorized from None
        if not isinstance(session, Session):
            raise Unauthorized
        return session

    def read_session(self, session_id: int) -> Session:
        """:meth:`load_session` for a reader outside any command: under the session's lock,
        as loading may fast-forward the cached session in place."""
        with self.session_locks.get(session_id):
            return self.load_session(session_id)

    def check_guards(self, guards: Sequence[Guard]) -> None:
        """StaleGuard unless each guard's aggregate is still at the version it names (for
        a guarded command that made no append to check them)."""
        for originator_id, version in guards:
            last = self.recorder.select_events(originator_id, desc=True, limit=1)
            if not last or last[0].originator_version != version:
                raise StaleGuard("a guard of the command changed meanwhile")

    def cached_session(self, session_id: int) -> Session | None:
        """A copy of the session as this process last saved, loaded or followed it (see
        :meth:`follow`), without asking the store (None when not cached): a guess, which the
        append's version check confirms, or refutes with a conflict (another process wrote
        first)."""
        cache = self.repository.cache
        if cache is None:
            return None
        try:
            cached = cache.get(aggregate_uuid(session_id))
        except KeyError:
            return None
        return copy.deepcopy(cached) if isinstance(cached, Session) else None

    def forget(self, session_id: int) -> None:
        """Drop this process's guess of the session (another writer moved it on): the next
        command reads it from the store instead of losing to the same conflict again."""
        if self.repository.cache is not None:
            with contextlib.suppress(KeyError):
                self.repository.cache.get(aggregate_uuid(session_id), evict=True)

    def remember(self, session: Session) -> None:
        """After ``session`` was saved: it is what the store now holds, the next guess."""
        if self.repository.cache is not None:
            self.repository.cache.put(session.id, session)

    def follow(self, recorded: Sequence[StoredEvent]) -> int:
        """Bring the cached sessions up to events other processes recorded (``recorded``,
        in log order; this process's own are skipped), so its next guess of them holds: an
        event that is a cached session's next version is applied to it, one that leaves a
        gap drops the guess. Returns how many were applied."""
        cache = self.repository.cache
        if cache is None:
            return 0
        applied = 0
        for stored in recorded:
            originator = stored.originator_id
            if not isinstance(originator, UUID) or _behind(cache, stored) is None:
                continue  # not cached, or this process wrote or read it already
            with self.session_locks.get(snowflake_of(originator)):
                cached = _behind(cache, stored)  # again, now that nothing else changes it
                if cached is None:
                    continue
                if cached.version + 1 != stored.originator_version:
                    cache.get(originator, evict=True)  # a gap: the store tells the rest
                    continue
                try:
                    _fold(cached, [self.mapper.to_domain_event(stored)])
                except BaseException:
                    cache.get(originator, evict=True)  # maybe half changed: not a guess
                    raise
                applied += 1
        return applied

    def context_mapper(self) -> ContextMapper:
        """The mapper, as the ContextMapper :meth:`construct_mapper` made it."""
        mapper = self.mapper
        assert isinstance(mapper, ContextMapper)
        return mapper


def _behind(cache: Any, stored: StoredEvent) -> Session | None:
    """The session ``cache`` holds for ``stored``'s originator if it is older than
    ``stored``; else None."""
    try:
        cached = cache.get(stored.originator_id)
    except KeyError:
        return None
    behind = isinstance(cached, Session) and cached.version < stored.originator_version
    return cached if behind else None


def _fold(aggregate: Any, events: Iterable[Any]) -> Any:
    """eventsourcing's ``project_aggregate`` without its per-event runtime protocol check."""
    for event in events:
        aggregate = event.mutate(aggregate)
    return aggregate
