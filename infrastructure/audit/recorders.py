"""Application recorders that seal each appended event into the audit chains, atomically.

They extend the library's recorders only at the point where an append has its positions
and is still inside its transaction (after PostgreSQL's table lock, inside SQLite's write
transaction), so the seals are written, or rolled back, with the events.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import (
    DataError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    ProgrammingError,
    StoredEvent,
)
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteCursor
from psycopg import Cursor, Rollback
from psycopg.rows import DictRow
from psycopg.sql import SQL, Identifier

from infrastructure.audit.chain import CHAIN_TABLE, GENESIS, Chain, Seal, originator_key
from infrastructure.audit.group_commit import Append, GroupCommit
from infrastructure.sqlite_subscription import SubscribableSQLiteApplicationRecorder


def chain_ddl(table: str, id_type: str) -> list[str]:
    """The seals table and its index."""
    return [
        f"CREATE TABLE IF NOT EXISTS {table} (position {id_type} PRIMARY KEY, "
        "originator_id TEXT NOT NULL, originator_version BIGINT NOT NULL, "
        "event_hash TEXT NOT NULL, session_hash TEXT NOT NULL, global_hash TEXT NOT NULL)",
        f"CREATE INDEX IF NOT EXISTS {table.split('.')[-1]}_originator_idx "
        f"ON {table} (originator_id, originator_version)",
    ]


class Sealing:
    """What both recorders share: read the heads, compute, insert the seals."""

    chain = Chain()

    def _seal(
        self, cursor: Any, table: str, mark: str, events: Sequence[StoredEvent], ids: Sequence[int]
    ) -> None:
        cursor.execute(f"SELECT global_hash FROM {table} ORDER BY position DESC LIMIT 1")
        row = cursor.fetchone()
        head = bytes.fromhex(row["global_hash"]) if row else GENESIS
        heads: dict[str, bytes] = {}
        for originator in {originator_key(e.originator_id) for e in events}:
            cursor.execute(
                f"SELECT session_hash FROM {table} WHERE originator_id = {mark} "
                "ORDER BY originator_version DESC LIMIT 1",
                (originator,),
            )
            found = cursor.fetchone()
            if found:
                heads[originator] = bytes.fromhex(found["session_hash"])
        seals = self.chain.seal(events, ids, head, heads)
        cursor.executemany(
            f"INSERT INTO {table} (position, originator_id, originator_version, event_hash, "
            f"session_hash, global_hash) VALUES ({', '.join([mark] * 6)})",
            [_row(s) for s in seals],
        )


APPEND_SEALED_FUNCTION = """
CREATE OR REPLACE FUNCTION {function}(
    originators text[], expected_global text, expected_sessions text[],
    ids {id_type}[], versions bigint[], topics text[], states bytea[],
    seal_originators text[], event_hashes text[], session_hashes text[], global_hashes text[]
) RETURNS TABLE (ok boolean, g text, s text[], positions bigint[])
LANGUAGE plpgsql AS $body$
DECLARE
    current_global text;
    current_sessions text[];
BEGIN
    PERFORM set_config('lock_timeout', '{lock_timeout}s', true);
    -- The library's lock: positions are issued in commit order (see eventsourcing.postgres).
    LOCK TABLE {events} IN EXCLUSIVE MODE;
    NOTIFY {channel};
    SELECT c.global_hash INTO current_global FROM {chain} c ORDER BY c.position DESC LIMIT 1;
    current_sessions := ARRAY(
        SELECT (SELECT c.session_hash FROM {chain} c WHERE c.originator_id = o.id
                ORDER BY c.originator_version DESC LIMIT 1)
        FROM unnest(originators) WITH ORDINALITY AS o(id, n) ORDER BY o.n);
    IF current_global IS DISTINCT FROM expected_global
       OR current_sessions IS DISTINCT FROM expected_sessions THEN
        RETURN QUERY SELECT false, current_global, current_sessions, NULL::bigint[];
        RETURN;
    END IF;
    -- Rows are inserted, and positions drawn, in the arrays' order: the order the seals
    -- were chained in.
    RETURN QUERY
    WITH inserted AS (
        INSERT INTO {events} (originator_id, originator_version, topic, state)
        SELECT * FROM unnest(ids, versions, topics, states)
        RETURNING notification_id
    ), numbered AS (
        SELECT notification_id, row_number() OVER (ORDER BY notification_id) AS n
        FROM inserted
    ), sealed AS (
        INSERT INTO {chain} (position, originator_id, originator_version, event_hash,
                             session_hash, global_hash)
        SELECT numbered.notification_id, x.o, x.v, x.e, x.s, x.g
        FROM numbered JOIN unnest(seal_originators, versions, event_hashes, session_hashes,
                                  global_hashes) WITH ORDINALITY AS x(o, v, e, s, g, n)
        ON x.n = numbered.n
        RETURNING position
    )
    SELECT true, NULL::text, NULL::text[],
           ARRAY(SELECT notification_id FROM numbered ORDER BY notification_id)
    FROM (SELECT count(*) FROM sealed) AS done;
END
$body$
"""

_UNKNOWN: Any = object()
SPECULATIONS = 3  # one-round-trip tries with fresh heads before the careful path
INSERT_ATTEMPTS = 10  # as the library's recorder: tries of an append over lost connections
INSERT_RETRY_WAIT = 0.2  # seconds between them


class _KnownHeads:
    """The chain heads as this process last wrote or read them: a guess, which the
    append statement checks under the table lock, so a stale one costs a retry, never a
    wrong seal."""

    def __init__(self, size: int = 65_536) -> None:
        self._size = size
        self._lock = threading.Lock()
        self.global_head: str | None = _UNKNOWN
        self._sessions: OrderedDict[str, str | None] = OrderedDict()

    def session(self, originator: str) -> str | None:
        with self._lock:
            return self._sessions.get(originator, _UNKNOWN)

    def learn(self, global_head: str | None, sessions: dict[str, str | None]) -> None:
        with self._lock:
            self.global_head = global_head
            for originator, head in sessions.items():
                self._sessions[originator] = head
                self._sessions.move_to_end(originator)
            while len(self._sessions) > self._size:
                self._sessions.popitem(last=False)

    def forget(self) -> None:
        with self._lock:
            self.global_head = _UNKNOWN


def _conflict(events: Sequence[StoredEvent]) -> IntegrityError:
    first = events[0]
    return IntegrityError(
        f"an event of {first.originator_id} at one of versions "
        f"{[e.originator_version for e in events]} is already recorded"
    )


def _row(seal: Seal) -> tuple[object, ...]:
    return (
        seal.position,
        seal.originator_id,
        seal.originator_version,
        seal.event_hash.hex(),
        seal.session_hash.hex(),
        seal.global_hash.hex(),
    )


class SealingSQLiteApplicationRecorder(Sealing, SubscribableSQLiteApplicationRecorder):
    """SQLite: seals in the same write transaction as the events."""

    def construct_create_table_statements(self) -> list[str]:
        """The library's tables, plus the seals."""
        return [*super().construct_create_table_statements(), *chain_ddl(CHAIN_TABLE, "INTEGER")]

    def _insert_events(
        self, c: SQLiteCursor, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        ids = super()._insert_events(c, stored_events, **kwargs)
        if ids:
            self._seal(c, CHAIN_TABLE, "?", stored_events, ids)
        return ids


class SealingPostgresApplicationRecorder(Sealing, PostgresApplicationRecorder):
    """PostgreSQL: seals after the table lock, inside the append's transaction.

    Concurrent appends are group-committed (see ``group_commit``): each batch is one call
    of a server-side function that takes the library's table lock, checks the chain heads
    this process expects, and inserts every waiting append's events and seals. Positions
    are still issued in commit order, so subscribers behave exactly as with the library's
    recorder. When the heads moved (another process appended) or an append conflicts,
    the batch takes a careful path that reads the heads under the lock.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        schema = self.datastore.schema
        self.chain_table = f'"{schema}".{CHAIN_TABLE}'
        statements: list[Any] = [SQL(s) for s in chain_ddl(self.chain_table, "BIGINT")]
        self.sql_create_statements.extend(statements)
        self._uuid_ids = self.datastore.originator_id_type == "uuid"
        self._insert_batch = SQL(
            "INSERT INTO {schema}.{table} AS t (originator_id, originator_version, topic, state) "
            "SELECT originator_id, originator_version, topic, state "
            "FROM unnest(%s::{schema}.{event_type}[]) "
            "ON CONFLICT DO NOTHING RETURNING originator_id, originator_version, notification_id"
        ).format(
            schema=Identifier(schema),
            table=Identifier(self.events_table_name),
            event_type=Identifier(self.stored_event_type_name),
        )
        self._select_recorded = SQL(
            "SELECT e.originator_id, e.originator_version, e.topic, e.state, e.notification_id "
            "FROM {schema}.{table} e JOIN unnest(%s::{id_type}[], %s::bigint[]) AS k(i, v) "
            "ON e.originator_id = k.i AND e.originator_version = k.v"
        ).format(
            schema=Identifier(schema),
            table=Identifier(self.events_table_name),
            id_type=SQL("uuid" if self._uuid_ids else "text"),
        )
        chain = SQL(self.chain_table)
        self._select_heads = SQL(
            "SELECT NULL::text AS originator_id, "
            "(SELECT global_hash FROM {chain} ORDER BY position DESC LIMIT 1) AS hash "
            "UNION ALL "
            "SELECT o, (SELECT session_hash FROM {chain} c WHERE c.originator_id = o "
            "ORDER BY originator_version DESC LIMIT 1) FROM unnest(%s::text[]) AS o"
        ).format(chain=chain)
        self._insert_seals = SQL(
            "INSERT INTO {chain} (position, originator_id, originator_version, event_hash, "
            "session_hash, global_hash) SELECT * FROM unnest(%s::bigint[], %s::text[], "
            "%s::bigint[], %s::text[], %s::text[], %s::text[])"
        ).format(chain=chain)
        id_type = "uuid" if self._uuid_ids else "text"
        function = SQL("{schema}.{name}").format(
            schema=Identifier(schema), name=Identifier(f"{self.events_table_name}_append_sealed")
        )
        self.sql_create_statements.append(
            SQL(APPEND_SEALED_FUNCTION).format(
                function=function,
                id_type=SQL(id_type),
                lock_timeout=SQL(str(int(self.datastore.lock_timeout))),
                events=SQL("{schema}.{table}").format(
                    schema=Identifier(schema), table=Identifier(self.events_table_name)
                ),
                channel=Identifier(self.channel_name),
                chain=chain,
            )
        )
        # Rendered once: composing SQL on every call costs more than the call itself.
        self._call_append_sealed = (
            SQL("SELECT * FROM {function}(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)")
            .format(function=function)
            .as_string(None)
            .encode()
        )
        self._heads = _KnownHeads()
        digest = hashlib.blake2b(f"session-ledger ddl {schema}".encode(), digest_size=8)
        self._ddl_lock_key = int.from_bytes(digest.digest(), "big", signed=True)
        self.group = GroupCommit(self._commit_batch)

    def _create_table(self, curs: Cursor[DictRow]) -> None:
        # Every process replaces the append function when it starts; two processes starting
        # together (serve --workers N) would otherwise fail with "tuple concurrently updated".
        curs.execute("SELECT pg_advisory_xact_lock(%s)", (self._ddl_lock_key,))
        super()._create_table(curs)

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        """Append atomically, sharing the transaction with concurrent appends.

        A lost connection is retried (as the library's recorder does). When it was lost
        while the append was under way, the server may have committed it without the
        answer arriving (a failover, a network cut): the retry first looks for the append's
        own events, byte for byte, and takes them as committed rather than failing with a
        conflict against itself.
        """
        attempts = 0
        while True:
            try:
                if attempts:
                    recorded = self._recorded_already(stored_events)
                    if recorded is not None:
                        return recorded
                return self._insert_events_once(stored_events, **kwargs)
            except (InterfaceError, OperationalError):
                attempts += 1
                if attempts >= INSERT_ATTEMPTS:
                    raise
                time.sleep(INSERT_RETRY_WAIT * (1 + 0.1 * (random.random() - 0.5)))

    def _recorded_already(self, stored_events: Sequence[StoredEvent]) -> list[int] | None:
        """The positions of ``stored_events`` if every one is recorded exactly as given."""
        if not stored_events:
            return None
        events = self._as_stored(stored_events)
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(
                self._select_recorded,
                ([e.originator_id for e in events], [e.originator_version for e in events]),
            )
            found = {(r["originator_id"], r["originator_version"]): r for r in curs.fetchall()}
        positions = []
        for e in events:
            row = found.get((e.originator_id, e.originator_version))
            if row is None or row["topic"] != e.topic or bytes(row["state"]) != e.state:
                return None
            positions.append(int(row["notification_id"]))
        return positions

    def _insert_events_once(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        if not stored_events or any(value is not None for value in kwargs.values()):
            # Tracking records and empty appends take the library's own path. (Applications
            # always pass ``tracking``, as None when there is nothing to track.)
            ids: Sequence[int] | None = super().insert_events(
                self._as_stored(stored_events), **kwargs
            )
            return ids
        return self.group.submit(stored_events)  # the batch spells the ids (_as_stored)

    def _as_stored(self, events: Sequence[StoredEvent]) -> Sequence[StoredEvent]:
        """Ids as the table stores them: a uuid column reads back UUIDs, so a string id
        is sealed under the same spelling the verifier will read."""
        if not self._uuid_ids or all(isinstance(e.originator_id, UUID) for e in events):
            return events
        try:
            return [
                StoredEvent(UUID(str(e.originator_id)), e.originator_version, e.topic, e.state)
                for e in events
            ]
        except ValueError as error:
            raise DataError(f"not a UUID: {error}") from None

    def _commit_batch(self, batch: list[Append]) -> None:
        live: list[Append] = []
        claimed: set[tuple[UUID | str, int]] = set()
        for append in batch:
            try:
                append.events = self._as_stored(append.events)
            except DataError as error:
                append.fail(error)
                continue
            keys = [(e.originator_id, e.originator_version) for e in append.events]
            if len(set(keys)) < len(keys) or claimed.intersection(keys):
                append.fail(_conflict(append.events))
                continue
            claimed.update(keys)
            live.append(append)
        if live and self._try_commit_in_one_round_trip(live):
            return
        while live:
            conflicted = self._try_commit(live)
            for append in conflicted:
                append.fail(_conflict(append.events))
            live = [a for a in live if a not in conflicted] if conflicted else []

    def _try_commit_in_one_round_trip(self, live: list[Append]) -> bool:
        """The usual way: compute the seals from the chain heads this process knows, and
        send lock, insert, seals and commit together, so the table lock is held only for
        the time the server takes, never across a round trip. The statement itself checks
        the heads under the lock and inserts nothing if they moved (another process
        appended); it then returns the real heads, and we try again with them, a few
        times. Returns False when nothing was committed; the caller then appends the
        careful way."""
        events = [e for append in live for e in append.events]
        originators = sorted({originator_key(e.originator_id) for e in events})
        digests = [self.chain.event_hash(e) for e in events]
        for _ in range(SPECULATIONS):
            committed = self._speculate(live, events, originators, digests)
            if committed is not None:
                return committed
        return False

    def _speculate(
        self,
        live: list[Append],
        events: list[StoredEvent],
        originators: list[str],
        digests: list[bytes],
    ) -> bool | None:
        """One try: True if committed, False if an append conflicts, None if the heads
        had moved (nothing was written; the real heads are learnt)."""
        global_head, session_heads = self._expected_heads(events, originators)
        # Positions are not hashed, so the seals can be made before they are known.
        seals = self._seal_from(
            events, list(range(len(events))), digests, global_head, session_heads
        )
        params = (
            originators,
            global_head,
            [session_heads[o] for o in originators],
            [e.originator_id for e in events],
            [e.originator_version for e in events],
            [e.topic for e in events],
            [e.state for e in events],
            [seal.originator_id for seal in seals],
            [seal.event_hash.hex() for seal in seals],
            [seal.session_hash.hex() for seal in seals],
            [seal.global_hash.hex() for seal in seals],
        )
        try:
            # One statement in its own transaction: one round trip, and the table lock is
            # taken and released inside the server.
            with self.datastore.get_connection() as conn, conn.cursor() as curs:
                curs.execute(self._call_append_sealed, params, prepare=True)
                row = curs.fetchone()
        except IntegrityError:
            # Some append conflicts with a recorded event; the careful way names which.
            return False
        assert row is not None
        if not row["ok"]:
            self._heads.learn(row["g"], dict(zip(originators, row["s"], strict=True)))
            return None
        positions: list[int] = row["positions"]
        if len(positions) != len(events):
            msg = f"appended {len(positions)} of {len(events)} events"
            raise ProgrammingError(msg)
        self._settle(live, positions, seals)
        return True

    def _settle(self, live: list[Append], ids: list[int], seals: list[Seal]) -> None:
        """After a commit: remember the heads it wrote, give each append its positions."""
        self._heads.learn(
            seals[-1].global_hash.hex(),
            {seal.originator_id: seal.session_hash.hex() for seal in seals},
        )
        start = 0
        for append in live:
            append.ids = ids[start : start + len(append.events)]
            start += len(append.events)

    def _expected_heads(
        self, events: list[StoredEvent], originators: list[str]
    ) -> tuple[str | None, dict[str, str | None]]:
        """The heads this process last saw, looked up (without any lock) where unknown."""
        first_versions: dict[str, int] = {}
        for e in events:
            key = originator_key(e.originator_id)
            first_versions.setdefault(key, e.originator_version)
            first_versions[key] = min(first_versions[key], e.originator_version)
        heads: dict[str, str | None] = {}
        unknown = []
        for originator in originators:
            known = self._heads.session(originator)
            if known is not _UNKNOWN:
                heads[originator] = known
            elif first_versions[originator] == 1:
                heads[originator] = None  # a new aggregate: its chain starts at genesis
            else:
                unknown.append(originator)
        global_head = self._heads.global_head
        if unknown or global_head is _UNKNOWN:
            with self.datastore.get_connection() as conn, conn.cursor() as curs:
                curs.execute(self._select_heads, (unknown,), prepare=True)
                found = {r["originator_id"]: r["hash"] for r in curs.fetchall()}
            global_head = found.pop(None, None)
            heads.update(found)
        return global_head, heads

    def _try_commit(self, live: list[Append]) -> list[Append]:
        """Commit every append in ``live``, or roll back and name those that conflict."""
        events = [e for append in live for e in append.events]
        keys = [(e.originator_id, e.originator_version) for e in events]
        rows = [
            self.construct_pg_stored_event(e.originator_id, e.originator_version, e.topic, e.state)
            for e in events
        ]
        digests = [self.chain.event_hash(e) for e in events]  # before taking the lock
        originators = sorted({originator_key(e.originator_id) for e in events})
        conflicted: list[Append] = []
        ids: list[int] = []
        with (
            self.datastore.get_connection() as conn,
            conn.pipeline() as pipeline,
            conn.transaction(),
            conn.cursor() as curs,
            conn.cursor() as heads_cursor,
        ):
            self._lock_table(curs)
            self._notify_channel(curs)
            curs.execute(self._insert_batch, (rows,), prepare=True)
            heads_cursor.execute(self._select_heads, (originators,), prepare=True)
            pipeline.sync()
            positions = {
                (r["originator_id"], r["originator_version"]): r["notification_id"]
                for r in curs.fetchall()
            }
            if len(positions) < len(events):
                conflicted = [
                    a
                    for a in live
                    if any(
                        (e.originator_id, e.originator_version) not in positions for e in a.events
                    )
                ]
                raise Rollback
            ids = [positions[key] for key in keys]
            heads = {r["originator_id"]: r["hash"] for r in heads_cursor.fetchall()}
            seals = self._seals_in_log_order(events, ids, digests, heads)
            self._heads.forget()  # learnt again below, once committed
            columns = [list(column) for column in zip(*map(_row, seals), strict=True)]
            curs.execute(self._insert_seals, columns, prepare=True)
        if conflicted:
            return conflicted
        self._settle(live, ids, seals)
        return []

    def _seals_in_log_order(
        self,
        events: list[StoredEvent],
        ids: list[int],
        digests: list[bytes],
        heads: dict[str | None, str | None],
    ) -> list[Seal]:
        order = sorted(range(len(events)), key=ids.__getitem__)
        global_head = heads.pop(None, None)
        return self._seal_from(
            [events[i] for i in order],
            [ids[i] for i in order],
            [digests[i] for i in order],
            global_head,
            {o: h for o, h in heads.items() if o is not None},
        )

    def _seal_from(
        self,
        events: list[StoredEvent],
        positions: list[int],
        digests: list[bytes],
        global_head: str | None,
        session_heads: dict[str, str | None],
    ) -> list[Seal]:
        """Seals continuing from heads as the chain table spells them (hex, or None)."""
        return self.chain.seal(
            events,
            positions,
            bytes.fromhex(global_head) if global_head else GENESIS,
            {o: bytes.fromhex(h) for o, h in session_heads.items() if h},
            digests=digests,
        )

    def _fetch_ids_after_insert_events(
        self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        ids = super()._fetch_ids_after_insert_events(curs, stored_events, **kwargs)
        if ids:
            self._seal(curs, self.chain_table, "%s", stored_events, ids)
        return ids
