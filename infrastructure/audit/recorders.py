"""The PostgreSQL recorder that seals each appended event into the audit chains,
atomically, and group-commits concurrent appends (see :mod:`infrastructure.audit.sealing`
for what it shares with the SQLite recorder)."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence
from typing import Any

from eventsourcing.persistence import (
    InterfaceError,
    Notification,
    OperationalError,
    StoredEvent,
)
from eventsourcing.postgres import PostgresApplicationRecorder
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Identifier

from application.ports import Guard
from infrastructure.audit.batch_commit import SealedBatches
from infrastructure.audit.chain import CHAIN_TABLE, originator_key
from infrastructure.audit.group_commit import GroupCommit, library_path_unguarded
from infrastructure.audit.known_heads import KnownHeads
from infrastructure.audit.postgres_functions import sealing_functions
from infrastructure.sql import advisory_key

INSERT_ATTEMPTS = 10  # as the library's recorder: tries of an append over lost connections
INSERT_RETRY_WAIT = 0.2  # seconds between them


class SealingPostgresApplicationRecorder(SealedBatches, PostgresApplicationRecorder):
    """PostgreSQL: seals after the table lock, inside the append's transaction.

    Concurrent appends are group-committed (see ``group_commit``): each batch is one call
    of a server-side function that takes the library's table lock, checks the chain heads
    this process expects, and inserts every waiting append's events and seals. Positions
    are still issued in commit order, so subscribers behave exactly as with the library's
    recorder. When the heads moved (another process appended) or an append conflicts,
    the batch takes a careful path that reads the heads under the lock (both in
    :mod:`infrastructure.audit.batch_commit`).
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
        self._select_followed = SQL(
            "SELECT e.notification_id, e.originator_id, e.originator_version, e.topic, e.state,"
            " c.session_hash, c.global_hash FROM {events} e"
            " LEFT JOIN {schema}.{chain} c ON c.position = e.notification_id"
            " WHERE e.notification_id > %s ORDER BY e.notification_id LIMIT %s"
        ).format(events=events, schema=Identifier(schema), chain=Identifier(CHAIN_TABLE))
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
        self._stale_guards_call = functions.stale_guards
        self._heads = KnownHeads()
        self.heads_moved = 0
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
        return self._insert_with_retries(stored_events, 0, **kwargs)

    async def insert_events_at_once(
        self, stored_events: Sequence[StoredEvent], guards: Sequence[Guard]
    ) -> Sequence[int]:
        """:meth:`insert_events` (with ``guards``) for a caller on an event loop: it waits
        for the batch that decides its append without holding a thread. A connection lost
        meanwhile is retried as :meth:`insert_events` retries it, in a thread."""
        try:
            return await self.group.submit_at_once(stored_events, guards)
        except (InterfaceError, OperationalError):
            await asyncio.sleep(INSERT_RETRY_WAIT * (1 + 0.1 * (random.random() - 0.5)))
            ids = await asyncio.to_thread(
                self._insert_with_retries, stored_events, 1, guards=guards
            )
            assert ids is not None  # an append with events has their positions
            return ids

    def _insert_with_retries(
        self, stored_events: Sequence[StoredEvent], attempts: int, **kwargs: Any
    ) -> Sequence[int] | None:
        """Append, retrying a lost connection; ``attempts`` already made (from the first
        retry on, the append's own events are looked for before it is made again)."""
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
        guards = library_path_unguarded(stored_events, kwargs)
        if guards is None:
            ids: Sequence[int] | None = super().insert_events(
                self._as_stored(stored_events), **kwargs
            )
            return ids
        # The batch spells the ids (_as_stored).
        return self.group.submit(stored_events, guards)

    def follow(self, after: int, limit: int) -> list[Notification]:
        """What was appended after position ``after`` (at most ``limit`` events, in log
        order), learning the chain heads their seals show: the next batch then expects
        heads another process moved (see :mod:`infrastructure.audit.following`)."""
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(self._select_followed, (after, limit), prepare=True)
            rows = curs.fetchall()
        if not rows:
            return []
        sessions: dict[str, tuple[int, str]] = {}
        global_head: tuple[int, str] | None = None
        for row in rows:
            if row["global_hash"] is not None:
                position = row["notification_id"]
                global_head = (position, row["global_hash"])
                sessions[originator_key(row["originator_id"])] = (position, row["session_hash"])
        if global_head is not None:
            self._heads.follow(global_head[0], global_head[1], sessions)
        return [
            Notification(
                id=row["notification_id"],
                originator_id=row["originator_id"],
                originator_version=row["originator_version"],
                topic=row["topic"],
                state=bytes(row["state"]),
            )
            for row in rows
        ]

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
