"""Event store appends beside plain INSERTs of the same rows, with a subscriber checking them.

    python -m bench.appends [--seconds 5] [--writers 1,8,32]

Needs PostgreSQL (``--database-url``, default postgresql://postgres@127.0.0.1:5432/test); a
fresh schema is created and dropped afterwards. The store is opened with the service's own
``build_services(Settings(database_url=…))`` (default settings: pool 10 + 10 overflow).

For each writer count, each for ``--seconds``, every writer thread appends one event per
transaction, the event being a real one (a new Session's ``Started`` event, made and mapped
by the application, inside the timed loop for every path alike):

- "session-ledger": ``services.sessions.recorder.insert_events([event])``, the service's
  append path: concurrent appends are group-committed, each batch by one call of a
  server-side function that takes eventsourcing's ``LOCK TABLE … IN EXCLUSIVE MODE``,
  NOTIFYs, inserts the events and writes their audit seals (see
  ``infrastructure/audit/recorders.py``); each writer still waits for its own commit;
- "eventsourcing only" (for attribution, not a target): the library's own
  ``PostgresApplicationRecorder`` on the same pool and another table, without the seals;
- "plain INSERT" (the baseline): ``INSERT … RETURNING notification_id; COMMIT`` of the same
  columns into a plain table (bigserial id, primary key (originator_id,
  originator_version), unique index on the id), one psycopg connection per writer.

Meanwhile a subscriber (``recorder.subscribe(gt=start)`` in a thread) collects every
notification id it receives from the service's events table. At the end the run fails with
exit status 1 if any appended event was not received, or received twice or out of order.
With ``--attribution``, also plain INSERTs preceded, in their transaction, by the
library's ``LOCK TABLE … IN EXCLUSIVE MODE``, by a ``NOTIFY`` (nobody listens), or by both:
where the library's cost comes from.

Prints appends/s and per-append p50/p99 for each, and the ratio at 8 writers (target >= 0.5).
"""

from __future__ import annotations

import argparse
import itertools
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import psycopg
from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder

from bench.common import DEFAULT_URL, fresh_schema, load_average, percentile, verdict
from domain.session import Session
from infrastructure.container import Services, build_services
from infrastructure.settings import Settings

Append = Callable[[StoredEvent], Sequence[int]]


@dataclass
class Result:
    """One path at one writer count."""

    appends: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.appends / self.seconds if self.seconds else 0.0


class Subscriber:
    """Counts what a subscription to the service's events table delivers."""

    def __init__(self, services: Services) -> None:
        self.recorder = services.sessions.recorder
        self.start = self.recorder.max_notification_id() or 0
        self.received: list[int] = []
        self.error: BaseException | None = None
        self._subscription: Any = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="subscriber", daemon=True)
        self._thread.start()
        self._ready.wait(10)

    def _run(self) -> None:
        try:
            with self.recorder.subscribe(gt=self.start) as subscription:
                self._subscription = subscription
                self._ready.set()
                for notification in subscription:
                    self.received.append(notification.id)
        except BaseException as error:  # reported, and the run fails
            self.error = error
            self._ready.set()

    def stop_when(self, done: Callable[[], bool], timeout: float) -> float:
        """Wait until ``done()`` (or the timeout), stop; the seconds waited."""
        started = time.perf_counter()
        while not done() and time.perf_counter() - started < timeout and self.error is None:
            time.sleep(0.05)
        waited = time.perf_counter() - started
        if self._subscription is not None:
            self._subscription.stop()
        self._thread.join(10)
        return waited


def real_event(services: Services) -> StoredEvent:
    """A new session's Started event, mapped exactly as the application maps it."""
    app = services.sessions
    session = Session.start(services.ids.next_id(), services.clock.now())
    stored: StoredEvent = app.mapper.to_stored_event(session.collect_events()[0])
    return stored


def run_writers(
    services: Services, writers: int, seconds: float, make_append: Callable[[], Append]
) -> tuple[Result, list[int]]:
    """``writers`` threads appending for ``seconds``; the result and every id returned."""
    result = Result()
    ids: list[int] = []
    lock = threading.Lock()
    barrier = threading.Barrier(writers + 1)
    deadline = [0.0]

    def writer() -> None:
        append = make_append()
        mine: list[int] = []
        latencies: list[float] = []
        try:
            barrier.wait()
            while time.perf_counter() < deadline[0]:
                event = real_event(services)
                started = time.perf_counter()
                mine.extend(append(event))
                latencies.append(time.perf_counter() - started)
        except Exception as error:
            with lock:
                result.errors.append(f"{type(error).__name__}: {error}")
        finally:
            with lock:
                ids.extend(mine)
                result.latencies.extend(latencies)
                result.appends += len(latencies)
            close = getattr(append, "close", None)
            if close is not None:
                close()

    threads = [threading.Thread(target=writer) for _ in range(writers)]
    for thread in threads:
        thread.start()
    deadline[0] = time.perf_counter() + seconds
    started = time.perf_counter()
    barrier.wait()
    for thread in threads:
        thread.join()
    result.seconds = time.perf_counter() - started
    return result, ids


class PlainInsert:
    """One connection, one INSERT … RETURNING and COMMIT per event."""

    def __init__(self, base_url: str, table: str, before: Sequence[str] = ()) -> None:
        self.conn = psycopg.connect(base_url)
        self.before = list(before)
        self.sql = (
            f"INSERT INTO {table} (originator_id, originator_version, topic, state) "  # noqa: S608
            "VALUES (%s, %s, %s, %s) RETURNING notification_id"
        )

    def __call__(self, event: StoredEvent) -> Sequence[int]:
        with self.conn.cursor() as cursor:
            for statement in self.before:
                cursor.execute(statement)
            cursor.execute(
                self.sql,
                (event.originator_id, event.originator_version, event.topic, event.state),
                prepare=True,
            )
            row = cursor.fetchone()
        self.conn.commit()
        return [row[0]] if row else []

    def close(self) -> None:
        self.conn.close()


def create_plain_table(base_url: str, schema: str) -> str:
    table = f"{schema}.plain_events"
    with psycopg.connect(base_url, autocommit=True) as conn:
        conn.execute(
            f"CREATE TABLE {table} (originator_id uuid NOT NULL, "
            "originator_version bigint NOT NULL, topic text, state bytea, "
            "notification_id bigserial, PRIMARY KEY (originator_id, originator_version))"
        )
        conn.execute(f"CREATE UNIQUE INDEX ON {table} (notification_id)")
    return table


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", default=DEFAULT_URL, help="postgresql://…")
    parser.add_argument("--seconds", type=float, default=5.0, help="per path and writer count")
    parser.add_argument("--writers", default="1,8,32", help="comma-separated writer counts")
    parser.add_argument(
        "--attribution",
        action="store_true",
        help="also plain INSERTs preceded by the library's LOCK TABLE and/or a NOTIFY",
    )
    args = parser.parse_args()
    url0 = args.database_url
    levels = [int(w) for w in args.writers.split(",")]
    print(f"load average at start: {load_average()}")

    failures: list[str] = []
    table: dict[tuple[str, int], Result] = {}
    with fresh_schema(args.database_url) as url:
        schema = url.rsplit("schema=", 1)[1]
        services = build_services(Settings(database_url=url))
        try:
            recorder = services.sessions.recorder
            assert isinstance(recorder, PostgresApplicationRecorder)
            library = PostgresApplicationRecorder(
                recorder.datastore, events_table_name="library_events"
            )
            library.create_table()
            plain = create_plain_table(args.database_url, schema)
            subscriber = Subscriber(services)
            appended: list[int] = []
            paths: list[tuple[str, Callable[[], Append]]] = [
                ("session-ledger", lambda: lambda e: recorder.insert_events([e]) or []),
                ("eventsourcing only", lambda: lambda e: library.insert_events([e]) or []),
                ("plain INSERT", lambda: PlainInsert(args.database_url, plain)),
            ]
            if args.attribution:
                lock = f"LOCK TABLE {plain} IN EXCLUSIVE MODE"
                notify = "NOTIFY bench_plain"
                paths += [
                    (f"plain + {what}", partial(PlainInsert, url0, plain, before))
                    for what, before in (
                        ("LOCK", [lock]),
                        ("NOTIFY", [notify]),
                        ("LOCK+NOTIFY", [lock, notify]),
                    )
                ]
            for writers in levels:
                for name, make in paths:
                    result, ids = run_writers(services, writers, args.seconds, make)
                    table[name, writers] = result
                    if name == "session-ledger":
                        appended.extend(ids)
                    for error in result.errors[:3]:
                        failures.append(f"{name} x{writers}: {error}")
            expected = set(appended)
            waited = subscriber.stop_when(lambda: expected <= set(subscriber.received), timeout=60)
        finally:
            services.close()

    print()
    print(
        f"appends, one event per transaction, {args.seconds:g}s per row "
        f"(PostgreSQL, schema {schema})"
    )
    print(f"{'':24}{'writers':>8}{'appends/s':>11}{'p50 ms':>9}{'p99 ms':>9}{'appends':>9}")
    for writers in levels:
        for name, _ in paths:
            r = table[name, writers]
            p50 = percentile(r.latencies, 50) * 1e3 if r.latencies else float("nan")
            p99 = percentile(r.latencies, 99) * 1e3 if r.latencies else float("nan")
            print(f"{name:24}{writers:8d}{r.rate:11,.0f}{p50:9.2f}{p99:9.2f}{r.appends:9,d}")
    for writers in levels:
        ours = table["session-ledger", writers].rate
        library_rate = table["eventsourcing only", writers].rate
        base = table["plain INSERT", writers].rate
        print(
            f"ratio session-ledger/plain at {writers:2d} writers: {ours / max(base, 1e-9):.2f}"
            f"   (eventsourcing only/plain: {library_rate / max(base, 1e-9):.2f})"
        )

    received = subscriber.received
    unique = set(received)
    missing = set(appended) - unique
    duplicates = len(received) - len(unique)
    out_of_order = sum(1 for a, b in itertools.pairwise(received) if b <= a)
    extra = unique - set(appended)
    print(
        f"subscriber: {len(received):,} received for {len(appended):,} appended "
        f"(caught up {waited:.2f}s after the last append); missing {len(missing)}, "
        f"duplicates {duplicates}, out of order {out_of_order}, unexpected {len(extra)}"
    )
    if subscriber.error is not None:
        failures.append(f"subscriber failed: {subscriber.error!r}")
    if missing:
        failures.append(
            f"{len(missing)} appended events never delivered, e.g. {sorted(missing)[:5]}"
        )
    if duplicates:
        failures.append(f"{duplicates} events delivered twice")
    if out_of_order:
        failures.append(f"{out_of_order} deliveries out of order")
    if extra:
        failures.append(f"{len(extra)} deliveries of events nobody appended")
    if 8 in levels:
        ratio = table["session-ledger", 8].rate / max(table["plain INSERT", 8].rate, 1e-9)
        print(f"ratio at 8 writers: {ratio:.2f}   (target >= 0.5: {verdict(ratio >= 0.5)})")
    print(f"load average at end: {load_average()}")
    if failures:
        for failure in failures:
            print(f"FAIL: {failure}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
