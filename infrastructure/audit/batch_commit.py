"""How the PostgreSQL recorder commits one group-commit batch of appends, with their seals.

The usual way is one round trip on the chain heads this process knows; when they have moved
(another process appended) or an append conflicts, the careful way reads the heads under the
table lock. The recorder itself (its statements, retries and the library's own path) is in
:mod:`infrastructure.audit.recorders`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING
from uuid import UUID

from eventsourcing.persistence import DataError, IntegrityError, ProgrammingError, StoredEvent
from psycopg import Cursor, Rollback
from psycopg.rows import DictRow
from psycopg.sql import Composed

from application.ports import Guard, OutOfStep, StaleGuard
from infrastructure.audit.chain import Seal, originator_key
from infrastructure.audit.group_commit import Append
from infrastructure.audit.known_heads import UNKNOWN, KnownHeads
from infrastructure.audit.pg_arrays import bigint_array, bytea_array, text_array
from infrastructure.audit.sealing import Sealing, seal_row

if TYPE_CHECKING:
    from eventsourcing.postgres import PostgresApplicationRecorder as _Recorder
else:
    _Recorder = object

SPECULATIONS = 3  # one-round-trip tries with fresh heads before the careful path


def _conflict(events: Sequence[StoredEvent]) -> IntegrityError:
    first = events[0]
    return IntegrityError(
        f"an event of {first.originator_id} at one of versions "
        f"{[e.originator_version for e in events]} is already recorded"
    )


def _out_of_step(events: Sequence[StoredEvent]) -> OutOfStep:
    first = events[0]
    return OutOfStep(
        f"the events of {first.originator_id} at versions "
        f"{[e.originator_version for e in events]} do not follow its last recorded version"
    )


class SealedBatches(Sealing, _Recorder):
    """The batch commit of the sealing PostgreSQL recorder (which sets the statements and
    the heads declared here, in :mod:`infrastructure.audit.recorders`)."""

    _uuid_ids: bool
    _insert_batch: Composed
    _select_heads: bytes
    _write_seals_call: bytes
    _call_append_sealed: bytes
    _stale_guards_call: bytes
    _select_recorded: Composed
    _heads: KnownHeads
    heads_moved: int  # one-round-trip appends refused because the chain heads had moved

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
        live = [a for a in live if a.error is None]
        if live and self._fail_recorded_already(live):
            # Those were guesses of a session another process had written; the others
            # try the one round trip again rather than take the table lock across two.
            live = [a for a in live if a.error is None]
            if live and self._try_commit_in_one_round_trip(live):
                return
            live = [a for a in live if a.error is None]
        while live:
            conflicted = self._try_commit(live)
            for append in conflicted:
                append.fail(_conflict(append.events))  # unless failed for its guards
            live = [a for a in live if a not in conflicted] if conflicted else []

    def _fail_recorded_already(self, live: list[Append]) -> bool:
        """Fail the appends with an event at a version already recorded (read without the
        lock: a recorded event stays recorded); whether there were any."""
        events = [e for append in live for e in append.events]
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(
                self._select_recorded,
                ([e.originator_id for e in events], [e.originator_version for e in events]),
            )
            recorded = {(r["originator_id"], r["originator_version"]) for r in curs.fetchall()}
        failed = False
        for append in live:
            if any((e.originator_id, e.originator_version) in recorded for e in append.events):
                append.fail(_conflict(append.events))
                failed = True
        return failed

    def _try_commit_in_one_round_trip(self, live: list[Append]) -> bool:
        """The usual way: compute the seals from the chain heads this process knows, and
        send lock, insert, seals and commit together, so the table lock is held only for
        the time the server takes, never across a round trip. The statement itself checks
        the heads under the lock and inserts nothing if they moved (another process
        appended); it then returns the real heads, and we try again with them, a few
        times. An append refused for its guards fails, and the others try again. Returns
        True when every append is decided, False when some are not (an append conflicts,
        or the heads kept moving): the caller then appends the careful way."""
        digests = {id(e): self.chain.event_hash(e) for append in live for e in append.events}
        for _ in range(SPECULATIONS):
            live = [a for a in live if a.error is None]
            if not live:
                return True
            events = [e for append in live for e in append.events]
            originators = sorted({originator_key(e.originator_id) for e in events})
            committed = self._speculate(live, events, originators, [digests[id(e)] for e in events])
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
        """One try: True if committed, False if an append conflicts, None if nothing was
        written because a guard was stale (the appends it guards have failed) or the heads
        had moved (the real heads are learnt)."""
        global_head, session_heads = self._expected_heads(events, originators)
        # Positions are not hashed, so the seals can be made before they are known.
        seals = self._seal_from(
            events, range(len(events)), {None: global_head, **session_heads}, digests
        )
        guard_ids, guard_versions = self._guard_columns(live)
        params = (  # as literals: see infrastructure.audit.pg_arrays
            text_array(originators),
            global_head,
            text_array([session_heads[o] for o in originators]),
            text_array([e.originator_id for e in events]),
            bigint_array([e.originator_version for e in events]),
            text_array([e.topic for e in events]),
            bytea_array([e.state for e in events]),
            text_array([seal.originator_id for seal in seals]),
            text_array([seal.event_hash.hex() for seal in seals]),
            text_array([seal.session_hash.hex() for seal in seals]),
            text_array([seal.global_hash.hex() for seal in seals]),
            text_array(guard_ids),
            bigint_array(guard_versions),
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
        if row["stale"]:
            self._fail_guarded(live, row["stale"])
            return None
        if not row["ok"]:
            self.heads_moved += 1
            self._heads.learn(row["g"], dict(zip(originators, row["s"], strict=True)))
            return None
        positions: list[int] = row["positions"]
        if len(positions) != len(events):
            msg = f"appended {len(positions)} of {len(events)} events"
            raise ProgrammingError(msg)
        self._settle(live, positions, seals)
        return True

    def _guard_columns(self, live: list[Append]) -> tuple[list[UUID | str], list[int]]:
        """The guards of ``live``'s appends (see :func:`_checks`), in order, as the
        function takes them."""
        ids: list[UUID | str] = []
        versions: list[int] = []
        for append in live:
            for (originator_id, version), _ in _checks(append):
                ids.append(originator_id if self._uuid_ids else str(originator_id))
                versions.append(version)
        return ids, versions

    @staticmethod
    def _fail_guarded(live: list[Append], stale: list[int]) -> list[Append]:
        """Fail the appends owning the stale guards (1-based ordinals over ``live``'s
        guards, in order; see :func:`_checks`); they are returned."""
        owners = [(append, continues) for append in live for _, continues in _checks(append)]
        failed: dict[int, Append] = {}
        for number in stale:
            append, continues = owners[number - 1]
            if continues:
                append.fail(_out_of_step(append.events))
            else:
                append.fail(StaleGuard("a guard of the append changed meanwhile"))
            failed[id(append)] = append
        return list(failed.values())

    def _settle(self, live: list[Append], ids: list[int], seals: list[Seal]) -> None:
        """After a commit: remember the heads it wrote, give each append its positions."""
        self._heads.learn(
            seals[-1].global_hash.hex(),
            {seal.originator_id: seal.session_hash.hex() for seal in seals},
            max(ids),
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
        """Commit every append in ``live``, or roll back and name those that conflict or
        whose guards are stale (those fail here)."""
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
            conn.cursor() as guards_cursor,
        ):
            self._lock_table(curs)
            self._notify_channel(curs)
            guards_cursor.execute(self._stale_guards_call, self._guard_columns(live), prepare=True)
            curs.execute(self._insert_batch, (rows,), prepare=True)
            heads_cursor.execute(self._select_heads, (originators,), prepare=True)
            pipeline.sync()
            stale = guards_cursor.fetchone()
            if stale is not None and stale["stale"]:
                conflicted = self._fail_guarded(live, stale["stale"])
                raise Rollback
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


def _checks(append: Append) -> list[tuple[Guard, bool]]:
    """What the append statement checks of ``append`` under the table lock besides its
    versions being free: its guards (False), and that it continues each aggregate it
    appends to (True): the version before its first event there is the last one recorded.
    A copy of an aggregate can be ahead of the store: a commit is visible on a PostgreSQL
    primary before its synchronous standby has it, so a read (a fast-forward, the log
    follower) may see an event that a failover then loses; an append decided on that copy
    would leave a gap in the aggregate's versions, which the unique key does not catch."""
    checks = [(guard, False) for guard in append.guards]
    first: dict[UUID | str, int] = {}
    for event in append.events:
        known = first.get(event.originator_id)
        if known is None or event.originator_version < known:
            first[event.originator_id] = event.originator_version
    for originator_id, version in first.items():
        if version > 1:  # a first event's version is free or taken: the unique key decides
            checks.append((Guard(originator_id, version - 1), True))  # type: ignore[arg-type]
    return checks


def _heads(rows: Sequence[DictRow]) -> dict[str | None, str | None]:
    return {row["originator_id"]: row["hash"] for row in rows}
