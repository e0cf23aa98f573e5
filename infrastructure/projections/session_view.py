"""The session read model: each session's state, folded from its events, one row per session.

The row holds the state as the library's snapshot JSON, so the API renders it with the same
code as an aggregate, and a projected session equals the aggregate by construction of the
fold (each event's own ``mutate``), not by a second implementation that could drift.
"""

from __future__ import annotations

import sqlite3
from asyncio import AbstractEventLoop, get_running_loop
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar, NamedTuple
from uuid import UUID
from weakref import WeakKeyDictionary

from eventsourcing.application import LRUCache
from eventsourcing.domain import Snapshot
from eventsourcing.persistence import Mapper, StoredEvent
from eventsourcing.utils import get_topic
from psycopg.rows import DictRow

from application.ports import HeadRead
from domain.ids import aggregate_uuid
from domain.session import Session
from infrastructure.aggregate_heads import AggregateHeads
from infrastructure.async_reads import AsyncReads, Together
from infrastructure.audit.pg_arrays import bigint_array, text_array
from infrastructure.projections.engine import Projector
from infrastructure.projections.projection import ProjectedEvent, Projection, Write
from infrastructure.projections.replica_reads import ReplicaReads
from infrastructure.sql import LocalReads, SqlCursor, SqlDatabase, bulk_insert, select_in

_SNAPSHOT_TOPIC = get_topic(Snapshot)
COLUMNS = ("session_id", "version", "updated_at", "state")
MEMO_LIMIT = 50_000  # sessions kept decoded during a rebuild
_Rows = tuple[list[dict[str, Any]], list[dict[str, Any]]]  # rows to insert, rows to update
DECODED_KEPT = 5_000  # sessions kept decoded for reads (about 3 kB each)


class SessionStateCodec:
    """Session state to and from the JSON text the read model stores."""

    def __init__(self, mapper: Mapper[UUID]) -> None:
        self._mapper = mapper

    def encode(self, session: Session) -> str:
        """The session's state as JSON text; the same state always gives the same text."""
        snapshot = Snapshot.take(session)
        # take() stamps the wall clock; a rebuild must reproduce the row byte for byte.
        stable = Snapshot(
            originator_id=snapshot.originator_id,
            originator_version=snapshot.originator_version,
            timestamp=session.modified_on,
            topic=snapshot.topic,
            state=snapshot.state,
        )
        return self._mapper.to_stored_event(stable).state.decode("utf-8")

    def decode(self, session_id: int, version: int, state: str) -> Session:
        """A Session rebuilt from stored JSON text."""
        stored = StoredEvent(
            originator_id=aggregate_uuid(session_id),
            originator_version=version,
            topic=_SNAPSHOT_TOPIC,
            state=state.encode("utf-8"),
        )
        snapshot: Any = self._mapper.to_domain_event(stored)
        session = snapshot.mutate(None)
        assert isinstance(session, Session)
        return session


def _fold(sessions: dict[int, Session], events: Sequence[Session.Event]) -> None:
    """Fold ``events`` into the sessions they belong to (a session not there is created)."""
    for event in events:
        key = event.originator_id.int
        mutated = event.mutate(sessions.get(key))
        assert isinstance(mutated, Session)
        sessions[key] = mutated


class SessionView(Projection):
    """``read_sessions(session_id, version, updated_at, state)``."""

    name: ClassVar[str] = "sessions"
    tables: ClassVar[tuple[str, ...]] = ("read_sessions",)
    prepares: ClassVar[bool] = True

    def __init__(self, codec: SessionStateCodec) -> None:
        self.codec = codec

    def create_statements(self, db: SqlDatabase, generation: int) -> list[str]:
        """One table keyed by session id."""
        table = self.physical(db, "read_sessions", generation)
        timestamp = "TIMESTAMPTZ" if db.dialect == "postgres" else "TEXT"
        return [
            f"CREATE TABLE IF NOT EXISTS {table} (session_id TEXT PRIMARY KEY, "
            f"version INTEGER NOT NULL, updated_at {timestamp} NOT NULL, state TEXT NOT NULL)"
        ]

    def apply(self, write: Write, batch: Sequence[ProjectedEvent]) -> None:
        """Fold the batch's session events into the touched sessions; write each once."""
        events = [p.event for p in batch if isinstance(p.event, Session.Event)]
        if not events:
            return
        memo = write.memo
        sessions: dict[int, Session] = memo.setdefault("sessions", {})
        stored: set[int] = memo.setdefault("stored", set())
        dirty: set[int] = memo.setdefault("dirty", set())
        touched = {e.originator_id.int for e in events}
        missing = set() if memo.get("complete") else touched - sessions.keys()
        loaded = self._load(write.cursor, write.table("read_sessions"), missing)
        sessions.update(loaded)
        stored.update(loaded)
        _fold(sessions, events)
        dirty.update(touched)
        if not memo.get("defer") or len(sessions) > MEMO_LIMIT:
            self.flush(write)

    def flush(self, write: Write) -> None:
        """Insert new sessions in bulk and update changed ones."""
        memo = write.memo
        sessions: dict[int, Session] = memo.get("sessions", {})
        stored: set[int] = memo.get("stored", set())
        dirty: set[int] = memo.get("dirty", set())
        self.write_prepared(write, self._rows(sessions, stored, dirty))
        stored.update(dirty)
        dirty.clear()
        if len(sessions) > MEMO_LIMIT:
            sessions.clear()
            stored.clear()
            memo["complete"] = False

    def prepare(self, read: Write, batch: Sequence[ProjectedEvent]) -> _Rows:
        """The rows :meth:`apply` would write: the touched sessions read, folded and
        encoded (most of this projection's work) before the write transaction."""
        events = [p.event for p in batch if isinstance(p.event, Session.Event)]
        touched = {e.originator_id.int for e in events}
        sessions = self._load(read.cursor, read.table("read_sessions"), touched)
        stored = set(sessions)
        _fold(sessions, events)
        return self._rows(sessions, stored, touched)

    def write_prepared(self, write: Write, prepared: _Rows) -> None:
        """Insert the new sessions in bulk and update the changed ones."""
        inserted, updated = prepared
        table = write.table("read_sessions")
        bulk_insert(write.cursor, write.db.dialect, table, COLUMNS, inserted)
        if updated:
            write.cursor.executemany(
                f"UPDATE {table} SET version = %(version)s, updated_at = %(updated_at)s, "
                "state = %(state)s WHERE session_id = %(session_id)s",
                updated,
            )

    def _rows(self, sessions: dict[int, Session], stored: set[int], keys: Iterable[int]) -> _Rows:
        """The rows of ``keys``' sessions: those not ``stored`` yet to insert, the rest to
        update."""
        inserted: list[dict[str, Any]] = []
        updated: list[dict[str, Any]] = []
        for key in keys:
            session = sessions[key]
            row = {
                "session_id": str(key),
                "version": session.version,
                "updated_at": session.modified_on,
                "state": self.codec.encode(session),
            }
            (updated if key in stored else inserted).append(row)
        return inserted, updated

    def _load(self, cursor: SqlCursor, table: str, keys: Iterable[int]) -> dict[int, Session]:
        select = f"SELECT session_id, version, state FROM {table}"
        found: dict[int, Session] = {}
        for row in select_in(cursor, select, "session_id", (str(k) for k in keys)):
            session_id = int(row["session_id"])
            found[session_id] = self.codec.decode(session_id, int(row["version"]), row["state"])
        return found


class SessionReadModel:
    """Queries of the session read model, and read-your-writes for the API."""

    def __init__(
        self,
        db: SqlDatabase,
        codec: SessionStateCodec,
        projector: Projector,
        heads: AggregateHeads,
        replica: ReplicaReads | None = None,
        async_reads: AsyncReads | None = None,
        signing_kid: str | None = None,
        local_reads: LocalReads | None = None,
    ) -> None:
        self._db = db
        self._async = async_reads  # the one statement below, issued from the event loop
        self._local = local_reads  # or (SQLite) made by the event loop itself
        self._signing_kid = signing_kid  # a subquery naming the active key, if in this db
        self._codec = codec
        self._projector = projector
        self._heads = heads  # where the events are not in this database
        self._view = db.table("read_sessions")
        # Sessions as last decoded from the view, shared by the reads that find that
        # version still current (nothing mutates a decoded state; commands load their own).
        self._decoded: LRUCache[int, Session] = LRUCache(maxsize=DECODED_KEPT)
        # Reads from an event loop, answered together (one statement for those waiting).
        self._together: WeakKeyDictionary[AbstractEventLoop, Together[_HeadQuery, DictRow]]
        self._together = WeakKeyDictionary()
        self._replica = replica
        # The event store's table, when it lives in this database and no replica answers:
        # then a session's head and its projected state are one statement.
        table = projector.log.table_here() if replica is None else None
        self._events = db.table(table) if table else None
        self._heads_sql = (
            _heads_statement(self._events, self._view, signing_kid) if self._events else None
        )

    def catch_up(self, position: int | None = None) -> None:
        """Make the read model reflect the log up to ``position`` (or its head)."""
        self._projector.catch_up(position)

    def session_state(self, session_id: int, at_least: int = 0) -> Session | None:
        """The projected state of a session, or None if the read model has not seen it;
        from the replica when there is one and it has reached version ``at_least``."""

        def query(db: SqlDatabase) -> Session | None:
            return self._read(db, session_id)

        if self._replica is None:
            return query(self._db)
        return self._replica.read(
            query, lambda state: state is not None and state.version >= at_least, self._db
        )

    def state_at_head(self, session_id: int) -> tuple[int, Session | None] | None:
        """The version of the session's last event and its projected state: one round trip
        beside the event store, else two (see the port's docstring)."""
        return self._at_head(session_id, None)[0]

    def state_and_token_at_head(
        self, session_id: int, token: UUID
    ) -> tuple[tuple[int, Session | None] | None, int | None]:
        """:meth:`state_at_head` and the version of the token aggregate's last event, in
        the same statement beside the event store."""
        return self._at_head(session_id, token)

    @property
    def reads_at_once(self) -> bool:
        """Whether :meth:`state_and_token_at_head_async` can answer (when its loop's pool is
        open, on PostgreSQL)."""
        return self._events is not None and (self._async is not None or self._local is not None)

    async def state_and_token_at_head_async(
        self, session_id: int, token: UUID, *, signing_kid: bool = False
    ) -> HeadRead | None:
        """:meth:`state_and_token_at_head` issued from the event loop, where it is one
        statement: on PostgreSQL over the loop's async pool, if open (reads made while
        another is out share the next statement: :class:`~infrastructure.async_reads.
        Together`); on a SQLite file made by the loop itself (:class:`~infrastructure.sql.
        LocalReads`). None where it cannot (ask the sync method), or the SQLite read would
        have waited. With ``signing_kid``, the active signing key's kid is read in the same
        statement (None where the keys are in another database)."""
        if self._events is None or (signing_kid and self._signing_kid is None):
            return None
        known = self._known(session_id)
        row: Mapping[str, Any] | None
        if self._local is not None:
            sql, params = self._at_head_statement(
                self._events, session_id, token, known, signing_kid=signing_kid
            )
            try:
                row = self._local.fetch_one(sql, params)
            except sqlite3.Error:
                return None  # locked for a moment, say: the thread's read waits, or reports
        elif self._async is not None and self._async.is_open:
            row = await self._heads_together()(_HeadQuery(session_id, token, known))
        else:
            return None
        found, token_version = self._at_head_answer(session_id, token, row, known)
        kid = str(row["signing_kid"]) if signing_kid and row and row["signing_kid"] else None
        return HeadRead(found, token_version, kid)

    def _heads_together(self) -> Together[_HeadQuery, DictRow]:
        """The running loop's :class:`Together` for :meth:`_heads_of`."""
        loop = get_running_loop()
        together = self._together.get(loop)
        if together is None:
            together = self._together[loop] = Together(self._heads_of)
        return together

    async def _heads_of(self, queries: Sequence[_HeadQuery]) -> list[DictRow]:
        """What :meth:`_at_head_statement` reads, for several sessions in one statement
        (each row as that statement's row, in the order of ``queries``)."""
        assert self._async is not None
        assert self._heads_sql is not None
        params = {
            "o": text_array(aggregate_uuid(q.session_id) for q in queries),
            "t": text_array(q.token for q in queries),
            "s": text_array(q.session_id for q in queries),
            "k": bigint_array(-1 if q.known is None else q.known.version for q in queries),
        }
        rows = await self._async.fetch_all(self._heads_sql, params)
        by_number = {int(row["n"]): row for row in rows}
        return [by_number[number] for number in range(1, len(queries) + 1)]

    def _at_head(
        self, session_id: int, token: UUID | None
    ) -> tuple[tuple[int, Session | None] | None, int | None]:
        if self._events is None:
            token_version = None if token is None else self._heads.version_of(token)
            written = self._heads.version_of(aggregate_uuid(session_id))
            if written is None:
                return None, token_version
            return (written, self.session_state(session_id, written)), token_version
        known = self._known(session_id)
        sql, params = self._at_head_statement(self._events, session_id, token, known)
        with self._db.read() as cursor:
            cursor.execute(sql, params)
            row = cursor.fetchone()
        return self._at_head_answer(session_id, token, row, known)

    def _known(self, session_id: int) -> Session | None:
        """The session as this process last decoded it from the view, if it still has it."""
        try:
            return self._decoded.get(session_id)
        except KeyError:
            return None

    def _at_head_statement(
        self,
        events: str,
        session_id: int,
        token: UUID | None,
        known: Session | None,
        *,
        signing_kid: bool = False,
    ) -> tuple[str, dict[str, Any]]:
        """The one statement reading a session's head version, its projected state (not
        sent when it is the ``known`` version: this process has it decoded), (with
        ``token``) the cookie token's head version and (with ``signing_kid``) the active
        signing key's kid, beside the event store."""
        postgres = self._db.dialect == "postgres"
        also = (
            f", (SELECT max(originator_version) FROM {events}"
            " WHERE originator_id = %(token)s) AS token_written"
            if token is not None
            else ""
        )
        if signing_kid and self._signing_kid is not None:
            also += f", {self._signing_kid} AS signing_kid"
        sql = (
            "SELECT e.written, v.version,"
            " CASE WHEN v.version = %(known)s THEN NULL ELSE v.state END AS state"
            f"{also} FROM (SELECT max(originator_version)"
            f" AS written FROM {events} WHERE originator_id = %(originator)s) AS e"
            f" LEFT JOIN {self._view} AS v ON v.session_id = %(id)s"
        )
        originator = aggregate_uuid(session_id)
        params: dict[str, Any] = {
            "originator": originator if postgres else originator.hex,
            "id": str(session_id),
            "known": -1 if known is None else known.version,
        }
        if token is not None:
            params["token"] = token if postgres else token.hex
        return sql, params

    def _at_head_answer(
        self,
        session_id: int,
        token: UUID | None,
        row: Mapping[str, Any] | None,
        known: Session | None,
    ) -> tuple[tuple[int, Session | None] | None, int | None]:
        token_version = None
        if token is not None and row is not None and row["token_written"] is not None:
            token_version = int(row["token_written"])
        if row is None or row["written"] is None:
            return None, token_version
        if row["version"] is None:
            return (int(row["written"]), None), token_version
        if row["state"] is None:  # the version this process has decoded: not sent
            assert known is not None
            return (int(row["written"]), known), token_version
        state = self._codec.decode(session_id, int(row["version"]), row["state"])
        self._decoded.put(session_id, state)
        return (int(row["written"]), state), token_version

    def _read(self, db: SqlDatabase, session_id: int) -> Session | None:
        with db.read() as cursor:
            cursor.execute(
                f"SELECT version, state FROM {self._view} WHERE session_id = %(id)s",
                {"id": str(session_id)},
            )
            row = cursor.fetchone()
        if row is None:
            return None
        return self._codec.decode(session_id, int(row["version"]), row["state"])


class _HeadQuery(NamedTuple):
    """One session's head read from the event loop: its cookie's token, and the version
    this process has decoded (the state is not sent for that version)."""

    session_id: int
    token: UUID
    known: Session | None


def _heads_statement(events: str, view: str, signing_kid: str | None) -> str:
    """The statement of ``SessionReadModel._heads_of``: per session, the version of its
    last event, its projected version and state (NULL when it is the version known), the
    version of its cookie token's last event and the active signing key's kid."""
    kid = signing_kid or "NULL"
    return (
        f"SELECT q.n, (SELECT max(originator_version) FROM {events} WHERE originator_id = q.o)"
        " AS written, v.version, CASE WHEN v.version = q.k THEN NULL ELSE v.state END AS state,"
        f" (SELECT max(originator_version) FROM {events} WHERE originator_id = q.t)"
        f" AS token_written, {kid} AS signing_kid"
        " FROM unnest(%(o)s::uuid[], %(t)s::uuid[], %(s)s::text[], %(k)s::bigint[])"
        " WITH ORDINALITY AS q(o, t, s, k, n)"
        f" LEFT JOIN {view} AS v ON v.session_id = q.s"
    )
