"""What the benchmarks share: a throw-away PostgreSQL schema, signed-in sessions, statistics.

Nothing here is product code; it only drives the product through its own entry points
(``build_services``, the domain's commands, ``SessionsApp.save``).
"""

from __future__ import annotations

import math
import os
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg
from eventsourcing.domain import Aggregate

from bench.history import USERS
from domain.session import Session
from domain.values import ActiveContext, SignInMethod
from infrastructure.container import Services

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"
ALICE, BOB = USERS[0], USERS[1]


@contextmanager
def fresh_store(kind: str) -> Iterator[str]:
    """A fresh store of ``kind``: a new schema on the default PostgreSQL server (dropped after)
    or a SQLite file in a temporary directory; yields its URL."""
    if kind == "postgres":
        with fresh_schema(DEFAULT_URL) as url:
            yield url
        return
    with tempfile.TemporaryDirectory() as directory:
        yield f"sqlite:///{directory}/bench.db"


@contextmanager
def fresh_schema(base_url: str) -> Iterator[str]:
    """A new schema for the run; yields the store URL naming it, drops it (CASCADE) after."""
    if not base_url.startswith(("postgresql://", "postgres://")):
        raise SystemExit(f"these benchmarks need PostgreSQL, not {base_url.split(':')[0]}")
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(base_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{base_url}{'&' if '?' in base_url else '?'}schema={schema}"
    finally:
        with psycopg.connect(base_url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def sign_in(session: Session, services: Services, user_id: int, now: datetime) -> int:
    """Add a plain-email sign-in for ``user_id`` with the domain's commands; its id."""
    ids = services.ids
    attempt, sign_in_id = ids.next_id(), ids.next_id()
    session.attempt_sign_in(
        attempt, SignInMethod.PLAIN_EMAIL, user_id, "digest", now + timedelta(minutes=30), 5, now
    )
    session.complete_sign_in(
        attempt, sign_in_id, user_id, now + timedelta(days=30), ActiveContext(), 5, now
    )
    return sign_in_id


@dataclass(frozen=True)
class SeededSession:
    """A session with Alice and Bob signed in (Bob active) and a cookie token that opens it."""

    session_id: int
    token: str
    alice_sign_in: int
    bob_sign_in: int


def seed_sessions(services: Services, count: int, chunk: int = 100) -> list[SeededSession]:
    """``count`` sessions with two live sign-ins each and a token of our choosing each."""
    app = services.sessions
    now = services.clock.now()
    seeded: list[SeededSession] = []
    pending: list[Aggregate] = []
    for _ in range(count):
        session = Session.start(services.ids.next_id(), now)
        alice = sign_in(session, services, ALICE, now)
        bob = sign_in(session, services, BOB, now)
        token, issued = services.tokens.issue(session.session_id, now)
        pending += [session, issued]
        seeded.append(SeededSession(session.session_id, token, alice, bob))
        if len(pending) >= 2 * chunk:
            app.save(*pending)
            pending.clear()
    if pending:
        app.save(*pending)
    for projector in services.projectors:
        projector.catch_up()
    return seeded


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (nearest rank) of ``values``."""
    ordered = sorted(values)
    rank = max(math.ceil(q / 100 * len(ordered)) - 1, 0)
    return ordered[min(rank, len(ordered) - 1)]


def load_average() -> str:
    """The 1/5/15-minute load averages, for the record."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f} (nproc {os.cpu_count()})"


def verdict(ok: bool) -> str:
    """MET / NOT MET."""
    return "MET" if ok else "NOT MET"
