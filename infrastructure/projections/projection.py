"""What a projection says: its tables and views per generation, and how a batch of events
changes them (the engine that runs it is :mod:`infrastructure.projections.engine`).

Tables are physical per generation (``<table>_g<N>``); readers use stable views (``<table>``)
that point at the live generation.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from eventsourcing.persistence import Notification, StoredEvent

from application.request_context import CONTEXT_KEY
from infrastructure.sql import SqlCursor, SqlDatabase


@dataclass(frozen=True)
class ProjectedEvent:
    """A decoded domain event with its position in the log, and the record it was read from
    (whose payload also holds the request context, which the decoded event drops)."""

    position: int
    event: Any
    stored: Notification | None = None


Payload = Callable[[StoredEvent], dict[str, Any]]  # a stored event's payload, context included


def recorded_context(projected: ProjectedEvent, payload: Payload) -> dict[str, Any] | None:
    """The request context the event was recorded with (as the audit settings keep it), or
    None when it was recorded outside a request. Decoded only by projections that ask."""
    if projected.stored is None:
        return None
    context = payload(projected.stored).get(CONTEXT_KEY)
    return context if isinstance(context, dict) else None


@dataclass(frozen=True)
class Write:
    """Where a projection writes a batch: the transaction's cursor, the database, the
    generation being written, and the memo that survives from batch to batch while one
    writer owns the generation (see :meth:`Projection.apply`)."""

    cursor: SqlCursor
    db: SqlDatabase
    generation: int
    memo: dict[str, Any]

    def table(self, name: str) -> str:
        """The physical name of one of the projection's tables in this generation."""
        return physical_table(self.db, name, self.generation)


class Projection(ABC):
    """What a projection needs to say: its tables, its views, and how events change them."""

    name: ClassVar[str]
    tables: ClassVar[tuple[str, ...]]
    # Bump when tables, views or folding change: services that start with a newer version
    # than the live generation was built with rebuild it before serving.
    version: ClassVar[int] = 1
    # Whether :meth:`prepare` works a batch's writes out ahead (see Projector.prepare).
    prepares: ClassVar[bool] = False

    @abstractmethod
    def create_statements(self, db: SqlDatabase, generation: int) -> list[str]:
        """DDL creating this generation's tables and indexes (IF NOT EXISTS)."""

    def view_statements(self, db: SqlDatabase, generation: int) -> list[tuple[str, str]]:
        """``(view name, SELECT)`` pairs of the stable views, in dependency order: by
        default one view per table, under the table's own name."""
        return [(t, f"SELECT * FROM {self.physical(db, t, generation)}") for t in self.tables]

    @abstractmethod
    def apply(self, write: Write, batch: Sequence[ProjectedEvent]) -> None:
        """Change this generation's tables for a batch of events, in the caller's transaction.

        ``write.memo`` survives from batch to batch while one writer owns the generation (a
        rebuild), so rows written by an earlier batch need not be read back; for live
        catch-ups it is empty every time. When ``memo["defer"]`` is true the projection may
        hold its writes back until :meth:`flush` (nobody reads a generation being rebuilt,
        and an interrupted rebuild starts again from scratch); ``memo["complete"]`` says the
        memo holds every row of the generation, so there is nothing to read back.
        """

    def flush(self, write: Write) -> None:
        """Write what ``apply`` deferred (a rebuild defers writes until the swap); by
        default nothing is deferred."""
        return

    def prepare(self, read: Write, batch: Sequence[ProjectedEvent]) -> Any | None:
        """What :meth:`apply` would write for the batch, worked out through ``read`` (a
        read transaction) before the write transaction, for :meth:`write_prepared` to
        write; None (the default) where the projection does not say it ahead. The engine
        writes it only if nothing moved this generation's position in between."""
        return None

    def write_prepared(self, write: Write, prepared: Any) -> None:
        """Write what :meth:`prepare` worked out, in the caller's transaction."""
        msg = f"{type(self).__name__} prepares nothing"
        raise NotImplementedError(msg)

    def physical(self, db: SqlDatabase, table: str, generation: int) -> str:
        """The physical name of one of the projection's tables in a generation."""
        return physical_table(db, table, generation)


@dataclass(frozen=True)
class ProjectionStatus:
    """Where a projection stands against the head of the log."""

    name: str
    generation: int
    position: int
    head: int
    rebuilding: bool

    @property
    def lag(self) -> int:
        """Events recorded but not yet projected."""
        return max(self.head - self.position, 0)


def physical_table(db: SqlDatabase, table: str, generation: int) -> str:
    """The physical name of one of a projection's tables in a generation."""
    return db.table(f"{table}_g{generation}")
