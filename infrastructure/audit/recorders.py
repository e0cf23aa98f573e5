"""The PostgreSQL recorder that seals each appended event into the audit chains,
atomically, and group-commits concurrent appends (see :mod:`infrastructure.audit.sealing`
for what it shares with the SQLite recorder)."""

from __future__ import annotations

import random
import time
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
from psycopg import Cursor, Rollback
from psycopg.rows import DictRow
from psycopg.sql import SQL, Identifier

from infrastructure.audit.chain import Seal, originator_key
from infrastructure.audit.group_commit import Append, GroupCommit
from infrastructure.audit.known_heads import UNKNOWN, KnownHeads
from infrastructure.audit.postgres_functions import sealing_functions
from infrastructure.audit.sealing import Sealing, seal_row
from infrastructure.sql import advisory_key

SPECULATIONS = 3  # one-round-trip tries with fresh heads before the careful path
INSERT_ATTEMPTS = 10  # as the library's recorder: tries of an append over lost connections
INSERT_RETRY_WAIT = 0.2  # seconds between them


def _conflict(events: Sequence[StoredEvent]) -> IntegrityError:
    first = events[0]
    return IntegrityError(
        f"an event of {first.originator_id} at one of versions "
        f"{[e.originator_version for e in events]} is already recorded"
    )


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
        self._uuid_ids = self.datastore.originator_id_type == "uuid"
        events = SQL("{schema}.{table}").format(
            schema=Identifier(schema), table=Identifier(self.events_table_name)
        )
        self._insert_batch = SQL(
            "INSERT INTO {events} AS t (originator_id, originator_version, topic, state) "
            "SELECT originator_id, originator_version, topic, state "
            "FROM unnest(%s::{schema}.{event_type}[]) "
            "ON CONFLICT DO NOTHING RETURNING originator_id, originator_version, notification_id"
        ).format(
            events=events,
            schema=Identifier(schema),
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
        functions = sealing_functions(
            schema,
            self.events_table_name,
            self.channel_name,
            id_type="uuid" if self._uuid_ids else "text",
            lock_timeout=int(self.datastore.lock_timeout),
        )
        self.sql_create_statements.extend(functions.create)  # replaced at every start
        self._select_heads = functions.select_heads
        self._write_seals_call = functions.write_seals
        self._call_append_sealed = functions.append_sealed
        self._heads = KnownHeads()
        self._ddl_lock_key = advisory_key(f"session-ledger ddl {schema}")
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
            events, range(len(events)), {None: global_head, **session_heads}, digests
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
    ) -> tuple[str | None, dict[str | None, str | None]]:
        """The heads this process last saw, looked up (without any lock) where unknown."""
        global_head, heads, unknown = self._heads.guess(events, originators)
        if unknown or global_head is UNKNOWN:
            with self.datastore.get_connection() as conn, conn.cursor() as curs:
                found = self._read_heads(curs, unknown)
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
            heads = _heads(heads_cursor.fetchall())
            seals = self._seal_from(events, ids, heads, digests)
            self._heads.forget()  # learnt again below, once committed
            self._write_seals(curs, seals)
        if conflicted:
            return conflicted
        self._settle(live, ids, seals)
        return []

    def _read_heads(
        self, curs: Cursor[DictRow], originators: Sequence[str]
    ) -> dict[str | None, str | None]:
        """The global head (under None) and each originator's, from the heads function."""
        curs.execute(self._select_heads, (list(originators),), prepare=True)
        return _heads(curs.fetchall())

    def _write_seals(self, curs: Cursor[DictRow], seals: Sequence[Seal]) -> None:
        """Insert seals through the one function that writes them."""
        columns = [list(column) for column in zip(*map(seal_row, seals), strict=True)]
        curs.execute(self._write_seals_call, columns, prepare=True)

    def _fetch_ids_after_insert_events(
        self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        # The library's own append (with tracking): seal inside its transaction.
        ids = super()._fetch_ids_after_insert_events(curs, stored_events, **kwargs)
        if ids:
            originators = sorted({originator_key(e.originator_id) for e in stored_events})
            heads = self._read_heads(curs, originators)
            self._heads.forget()
            self._write_seals(curs, self._seal_from(stored_events, ids, heads))
        return ids


def _heads(rows: Sequence[DictRow]) -> dict[str | None, str | None]:
    return {row["originator_id"]: row["hash"] for row in rows}
