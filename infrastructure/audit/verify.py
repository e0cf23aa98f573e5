"""Verification of the whole store against its seals: the first broken link, named.

Walks the event log and the seals side by side in position order and recomputes both
chains. It reports, and stops at, the first of: an event without a seal (inserted), a seal
without its event (deleted), an event that is not the one sealed at its position (moved,
replaced, reordered), an event whose hash differs (altered), a broken session or global
link, a gap in an aggregate's versions; then it checks every snapshot against the events
it summarises, and, if given, that an auditor's kept chain head is still in the history.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from eventsourcing.domain import Snapshot
from eventsourcing.persistence import Notification

from infrastructure.audit.chain import CHAIN_TABLE, GENESIS, Chain, originator_key
from infrastructure.sql import Row, SqlDatabase

BATCH = 2000


@dataclass
class VerifyReport:
    """What verification found."""

    events_checked: int = 0
    snapshots_checked: int = 0
    problem: str | None = None
    head_position: int = 0
    head_hash: str = GENESIS.hex()
    head_found: bool | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing is broken and a given head was found."""
        return self.problem is None and self.head_found is not False


def describe(originator_id: UUID | str, version: int, topic: str = "") -> str:
    """A human name for an event: which aggregate, which version, what kind."""
    key = originator_id if isinstance(originator_id, UUID) else UUID(str(originator_id))
    kind = topic.split(".")[-1] if topic else ""
    if key.int < 2**64:
        who = f"session {key.int}"
    else:
        who = f"{topic.split(':')[-1].split('.')[0] if topic else 'aggregate'} {key.hex}"
    return f"{who}, version {version}" + (f" ({kind})" if kind else "")


class Verifier:
    """Checks a store's events, seals and snapshots."""

    def __init__(self, app: Any, db: SqlDatabase, chain: Chain) -> None:
        self.app = app
        self.db = db
        self.chain = chain

    def _events(self) -> Iterator[Notification]:
        position = 0
        while batch := self.app.recorder.select_notifications(
            start=position, limit=BATCH, inclusive_of_start=False
        ):
            yield from batch
            position = batch[-1].id

    def _seals(self) -> Iterator[Row]:
        table = self.db.table(CHAIN_TABLE)
        position = -1
        while True:
            with self.db.transaction(commit=False) as cursor:
                cursor.execute(
                    f"SELECT * FROM {table} WHERE position > %(p)s ORDER BY position LIMIT {BATCH}",
                    {"p": position},
                )
                rows = cursor.fetchall()
            if not rows:
                return
            yield from rows
            position = int(rows[-1]["position"])

    def verify(self, expected_head: str | None = None) -> VerifyReport:
        """Check everything; stop at the first broken link."""
        report = VerifyReport(head_found=None if expected_head is None else False)
        if self._respelled_id(report):
            return report
        events, seals = self._events(), self._seals()
        event, seal = next(events, None), next(seals, None)
        global_head, session_heads, versions = GENESIS, dict[str, bytes](), dict[str, int]()
        while event is not None or seal is not None:
            if seal is None or (event is not None and event.id < int(seal["position"])):
                assert event is not None
                named = describe(event.originator_id, event.originator_version, event.topic)
                report.problem = (
                    f"position {event.id}: {named} has no seal: "
                    "it was not written by the service (inserted)"
                )
                return report
            position = int(seal["position"])
            sealed = describe(UUID(seal["originator_id"]), int(seal["originator_version"]))
            if event is None or position < event.id:
                report.problem = (
                    f"position {position}: the event sealed here ({sealed}) is missing (deleted)"
                )
                return report
            found = describe(event.originator_id, event.originator_version, event.topic)
            key = originator_key(event.originator_id)
            if key != seal["originator_id"] or event.originator_version != int(
                seal["originator_version"]
            ):
                report.problem = (
                    f"position {position}: found {found} where {sealed} was sealed "
                    "(events moved, swapped or replaced)"
                )
                return report
            if not isinstance(event.state, bytes | bytearray | memoryview):
                report.problem = (
                    f"position {position}: {found} was altered (its payload is not bytes)"
                )
                return report
            digest = self.chain.event_hash(event)
            if digest.hex() != seal["event_hash"]:
                report.problem = (
                    f"position {position}: {found} was altered (its content differs from its seal)"
                )
                return report
            previous = versions.get(key)
            if previous is None:
                # Aggregates start at version 1 (the library's own tests start at 0).
                missing = 1 if event.originator_version > 1 else None
            else:
                missing = previous + 1 if event.originator_version != previous + 1 else None
            if missing is not None:
                report.problem = (
                    f"position {position}: {found}, but version {missing} is missing (deleted)"
                )
                return report
            session_link = self.chain.link(session_heads.get(key, GENESIS), digest)
            global_link = self.chain.link(global_head, digest)
            if (
                session_link.hex() != seal["session_hash"]
                or global_link.hex() != seal["global_hash"]
            ):
                report.problem = (
                    f"position {position}: the chain breaks at {found} (seals were altered)"
                )
                return report
            session_heads[key], global_head, versions[key] = (
                session_link,
                global_link,
                event.originator_version,
            )
            report.events_checked += 1
            report.head_position, report.head_hash = position, global_link.hex()
            if expected_head is not None and global_link.hex() == expected_head:
                report.head_found = True
            event, seal = next(events, None), next(seals, None)
        if report.head_found is False:
            report.problem = (
                f"the chain head {expected_head} is not in this history: events up to it "
                "were altered or removed"
            )
            return report
        self._check_snapshots(report)
        return report

    def _respelled_id(self, report: VerifyReport) -> bool:
        """SQLite keeps ids as text: one re-spelled (say, upper case) hashes like the original
        but hides its event from its aggregate, so only the service's own spelling counts."""
        if self.db.dialect != "sqlite":
            return False
        with self.db.transaction(commit=False) as cursor:
            cursor.execute(
                "SELECT rowid AS position, originator_id, originator_version FROM stored_events "
                "WHERE originator_id != lower(originator_id) OR length(originator_id) != 32 "
                "ORDER BY rowid LIMIT 1"
            )
            row = cursor.fetchone()
        if row is None:
            return False
        report.problem = (
            f"position {row['position']}: the aggregate id of version "
            f"{row['originator_version']} was altered ({row['originator_id']!r})"
        )
        return True

    def _check_snapshots(self, report: VerifyReport) -> None:
        snapshots = getattr(self.app, "snapshots", None)
        if snapshots is None:
            return
        table = self.db.table(_snapshot_table(self.app, self.db))
        with self.db.transaction(commit=False) as cursor:
            cursor.execute(f"SELECT DISTINCT originator_id FROM {table}")
            originators = [UUID(str(row["originator_id"])) for row in cursor.fetchall()]
        for originator_id in originators:
            for stored in snapshots.recorder.select_events(originator_id):
                try:
                    snapshot: Any = self.app.mapper.to_domain_event(stored)
                    rebuilt = None
                    for e in self.app.events.get(originator_id, lte=snapshot.originator_version):
                        rebuilt = e.mutate(rebuilt)
                    expected = Snapshot.take(rebuilt).state if rebuilt is not None else None
                    broken = (
                        rebuilt is None
                        or rebuilt.version != snapshot.originator_version
                        or expected != snapshot.state
                    )
                except Exception:  # an unreadable snapshot is an altered one
                    broken = True
                if broken:
                    where = describe(originator_id, stored.originator_version)
                    report.problem = f"snapshot of {where} does not match the events it summarises"
                    return
                report.snapshots_checked += 1


def _snapshot_table(app: Any, db: SqlDatabase) -> str:
    return f"{app.name.lower()}_snapshots" if db.dialect == "postgres" else "stored_snapshots"
