"""Switch latency against the length of a session's history, in process, on PostgreSQL.

    python -m bench.history_length [--lengths 10,1000,10000] [--switches 300] [--sessions 5]

Needs PostgreSQL (``--database-url``, default postgresql://postgres@127.0.0.1:5432/test); a
fresh schema is created and dropped afterwards. The demo directory is loaded.

For each length, ``--sessions`` sessions (and as many again, see below) get that many prior
events (up to 2 more where a final sign-in was needed), made with the domain's own commands
as bench/history.py makes them (mostly switches, some organization changes, sign-outs and
new sign-ins; expiries recorded as the service records them), one event every
``--spacing`` seconds of simulated time (default one an hour: 10,000 events are about 14
months of daily use) ending now, saved in chunks of 500 (the application takes a snapshot
at every 50th version, as it does live), then the read models are caught up. Each session
ends with Alice and Bob signed in.

Then ``services.commands.switch_sign_in`` round trips are timed (wall clock) on two
instances over the same schema: ``build_services`` with default settings (aggregate cache
on), and one with ``aggregate_cache_size=0`` (what a process that has not yet seen the
session pays: the latest snapshot plus the events after it), each on sessions of its own.
All switches are interleaved (round-robin over lengths, sessions and the two instances) so
that a change in machine load hits every column alike; the first switch of each session is
not timed. Prints p50/p99 per length, the ratio longest/shortest (target within 1.2x, on
p50 and p99), and the size of the sessions' state in the read model (it grows with the
sign-in attempts of the last day, which the state keeps).
"""

from __future__ import annotations

import argparse
import random
import time
from datetime import datetime, timedelta

from bench.common import (
    ALICE,
    BOB,
    DEFAULT_URL,
    fresh_schema,
    load_average,
    percentile,
    sign_in,
    verdict,
)
from bench.history import _step
from domain.session import Session
from infrastructure.container import Services, build_services
from infrastructure.directory_file import parse_directory
from infrastructure.settings import Settings

IDLE_TIMEOUT = timedelta(seconds=Settings().sign_in_idle_timeout_seconds)


def build_history(
    services: Services, length: int, spacing: timedelta, rng: random.Random, chunk: int = 500
) -> tuple[int, int, int]:
    """A session with ``length`` events (up to 2 more if it must end signed in twice).

    A dry run (same random choices, nothing saved) counts the steps first, so that the
    history can end ``spacing`` before now. Returns (session id, Alice's and Bob's sign-in).
    """
    app = services.sessions
    choices = rng.getstate()
    steps = _play(services, length, services.clock.now(), spacing, rng, chunk=None)
    rng.setstate(choices)
    start = services.clock.now() - spacing * (steps + 1)
    session_id = _play(services, length, start, spacing, rng, chunk=chunk)
    now = services.clock.now()
    session = app.load_session(session_id)
    by_user = {s.user_id: s.id for s in session.live_sign_ins(now)}
    return session_id, by_user[ALICE], by_user[BOB]


def _play(
    services: Services,
    length: int,
    start: datetime,
    spacing: timedelta,
    rng: random.Random,
    chunk: int | None,
) -> int:
    """Make the history; saved in chunks, returning the session id, or (dry) the steps."""
    app = services.sessions
    now = start
    session = Session.start(services.ids.next_id(), now)
    steps = 0
    while session.version < length - 2:
        now += spacing
        session.expire_sign_ins(now, IDLE_TIMEOUT)
        _step(session, rng, services.ids, now, steps)
        steps += 1
        if chunk is not None and len(session.pending_events) >= chunk:
            app.save(session)
    now += spacing
    live = {s.user_id for s in session.live_sign_ins(now)}
    for user in (ALICE, BOB):
        if user not in live:
            sign_in(session, services, user, now)
    while session.version < length:
        other = next(s.id for s in session.live_sign_ins(now) if s.id != session.active_sign_in_id)
        session.switch_sign_in(other, now)
    if chunk is None:
        return steps + 1
    app.save(session)
    return session.session_id


def state_bytes(services: Services, session_id: int) -> int:
    with services.views.transaction(commit=False) as cursor:
        cursor.execute(
            f"SELECT length(state) AS n FROM {services.views.table('read_sessions')} "  # noqa: S608
            "WHERE session_id = %(id)s",
            {"id": str(session_id)},
        )
        row = cursor.fetchone()
    return int(row["n"]) if row else 0


Histories = dict[int, list[tuple[int, int, int]]]


def measure(runs: list[tuple[Services, Histories]], switches: int) -> list[dict[int, list[float]]]:
    """``switches`` timed switches per length and run, all interleaved; seconds."""
    active: dict[int, int] = {}
    latencies: list[dict[int, list[float]]] = [{n: [] for n in h} for _, h in runs]

    def switch(services: Services, session: tuple[int, int, int]) -> float:
        session_id, alice, bob = session
        target = alice if active.get(session_id, bob) == bob else bob
        started = time.perf_counter()
        services.commands.switch_sign_in(session_id, str(target))
        elapsed = time.perf_counter() - started
        active[session_id] = target
        return elapsed

    for services, histories in runs:
        for sessions in histories.values():
            for session in sessions:
                switch(services, session)  # untimed: the first load into this process
    for i in range(switches):
        for length in runs[0][1]:
            for (services, histories), found in zip(runs, latencies, strict=True):
                sessions = histories[length]
                found[length].append(switch(services, sessions[i % len(sessions)]))
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", default=DEFAULT_URL, help="postgresql://…")
    parser.add_argument("--lengths", default="10,1000,10000", help="prior events per session")
    parser.add_argument("--switches", type=int, default=300, help="timed switches per length")
    parser.add_argument(
        "--sessions", type=int, default=5, help="sessions per length, for each instance"
    )
    parser.add_argument(
        "--spacing", type=float, default=3600.0, help="simulated seconds between events"
    )
    args = parser.parse_args()
    lengths = [int(n) for n in args.lengths.split(",")]
    spacing = timedelta(seconds=args.spacing)
    print(f"load average at start: {load_average()}")
    rng = random.Random(7)

    with fresh_schema(args.database_url) as url:
        services = build_services(Settings(database_url=url))
        cold = build_services(Settings(database_url=url, aggregate_cache_size=0))
        try:
            from api.cli_common import demo_directory_text

            services.directory_loader.load(parse_directory(demo_directory_text()))
            started = time.perf_counter()
            warm_histories: Histories = {}
            cold_histories: Histories = {}
            for length in lengths:
                for histories in (warm_histories, cold_histories):
                    histories[length] = [
                        build_history(services, length, spacing, rng) for _ in range(args.sessions)
                    ]
            for projector in services.projectors:
                projector.catch_up()
            every = {n: warm_histories[n] + cold_histories[n] for n in lengths}
            versions = {
                n: [services.sessions.load_session(s[0]).version for s in every[n]] for n in lengths
            }
            sizes = {n: [state_bytes(services, s[0]) for s in every[n]] for n in lengths}
            built = time.perf_counter() - started
            print(
                f"built {sum(len(s) for s in every.values())} sessions, "
                f"{sum(sum(v) for v in versions.values()):,} events in {built:.1f}s"
            )
            warm, uncached = measure(
                [(services, warm_histories), (cold, cold_histories)], args.switches
            )
        finally:
            cold.close()
            services.close()

    print()
    print(
        f"switch_sign_in round trips, in process, PostgreSQL; {args.switches} per length, "
        f"over {args.sessions} sessions each (other sessions for cached and uncached), "
        "all interleaved"
    )
    print(
        f"{'prior events':>12}{'versions':>14}{'state bytes':>13}"
        f"{'cached p50':>12}{'p99':>8}{'uncached p50':>14}{'p99':>8}   (ms)"
    )
    for length in lengths:
        v, s = versions[length], sizes[length]
        print(
            f"{length:12,d}{f'{min(v)}-{max(v)}':>14}{f'{min(s)}-{max(s)}':>13}"
            f"{percentile(warm[length], 50) * 1e3:12.1f}{percentile(warm[length], 99) * 1e3:8.1f}"
            f"{percentile(uncached[length], 50) * 1e3:14.1f}"
            f"{percentile(uncached[length], 99) * 1e3:8.1f}"
        )
    short, long_ = lengths[0], lengths[-1]
    for label, data in (("cached (default settings)", warm), ("uncached", uncached)):
        p50 = percentile(data[long_], 50) / percentile(data[short], 50)
        p99 = percentile(data[long_], 99) / percentile(data[short], 99)
        ok = p50 <= 1.2 and p99 <= 1.2
        print(
            f"ratio {long_:,} vs {short:,}, {label}: p50 {p50:.2f}x, p99 {p99:.2f}x"
            f"   (target within 1.2x: {verdict(ok)})"
        )
    print(f"load average at end: {load_average()}")


if __name__ == "__main__":
    main()
