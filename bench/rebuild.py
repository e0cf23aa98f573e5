"""Projection rebuild speed, beside the speed of simply reading the same events.

    python -m bench.rebuild [--database-url URL] [--sessions 2000] [--events-per-session 25]

The baseline reads every notification in batches and decodes it into a domain event, which
is what any projection must do at least; the ratio says how close rebuilding comes to that.
Target (issue 3): at least 0.3 on PostgreSQL. Writes into a fresh PostgreSQL schema (dropped
afterwards) or a temporary SQLite file.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid

import psycopg

from bench.history import write_history
from infrastructure.container import build_services
from infrastructure.settings import Settings

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"


def read_all(services: object, batch: int = 500) -> int:
    app = services.sessions  # type: ignore[attr-defined]
    position, count = 0, 0
    while notifications := app.recorder.select_notifications(
        start=position, limit=batch, inclusive_of_start=False
    ):
        for n in notifications:
            app.mapper.to_domain_event(n)
        count += len(notifications)
        position = notifications[-1].id
    return count


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", default=DEFAULT_URL, help="postgresql://… or sqlite")
    parser.add_argument("--sessions", type=int, default=2000)
    parser.add_argument("--events-per-session", type=int, default=25)
    args = parser.parse_args()

    url, cleanup = args.database_url, None
    if url.startswith("postgres"):
        schema = f"bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
        url = f"{url}{'&' if '?' in url else '?'}schema={schema}"
        cleanup = (args.database_url, schema)
    elif url == "sqlite":
        url = f"sqlite:///{tempfile.mkdtemp()}/bench.db"
    services = build_services(Settings(database_url=url))
    try:
        started = time.perf_counter()
        events = write_history(services, args.sessions, args.events_per_session)
        elapsed = time.perf_counter() - started
        print(f"store: {url.split('?')[0]}  events: {events:,}  written in {elapsed:.1f}s")
        best_read = min(_timed(lambda: read_all(services)) for _ in range(3))
        read_rate = events / best_read
        print(f"read + decode          {read_rate:12,.0f} events/s   (baseline, best of 3)")
        total = 0.0
        for projector in services.projectors:
            seconds = _timed(projector.rebuild)
            total += seconds
            rate = events / seconds
            name = projector.name
            print(f"rebuild {name:<14} {rate:12,.0f} events/s   ratio {rate / read_rate:.2f}")
        rate = events / total
        print(f"rebuild --all          {rate:12,.0f} events/s   ratio {rate / read_rate:.2f}")
    finally:
        services.close()
        if cleanup:
            with psycopg.connect(cleanup[0], autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA {cleanup[1]} CASCADE")


def _timed(function: object) -> float:
    started = time.perf_counter()
    function()  # type: ignore[operator]
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
