"""Realistic session histories written straight through the event store, fast.

Commands through the API are limited by request overhead; benchmarks of reading and
projecting need many events quickly, so this builds Session aggregates with the domain's own
commands and saves them in bulk. Sessions are advanced round-robin so that their events
interleave in the log, as concurrent traffic would leave them.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from application.ports import IdGenerator
from domain.session import Session
from domain.values import ActiveContext, OrganizationMembershipFact, SignInMethod
from infrastructure.container import Services
from infrastructure.ids import SnowflakeGenerator

USERS = [100000000000000001, 100000000000000002, 100000000000000003]
ALICE_ACME = OrganizationMembershipFact(600000000000000001, USERS[0], 200000000000000001)


def write_history(services: Services, sessions: int, events_per_session: int, seed: int = 7) -> int:
    """Write about ``sessions * events_per_session`` events; return how many were written."""
    rng = random.Random(seed)
    ids = SnowflakeGenerator()
    app = services.sessions
    now = datetime(2026, 1, 1, tzinfo=UTC)
    live = [Session.start(ids.next_id(), now) for _ in range(sessions)]
    written = 0
    rounds = max(events_per_session - 1, 1)
    for round_ in range(rounds):
        now += timedelta(seconds=1)
        for session in live:
            _step(session, rng, ids, now, round_)
        for start in range(0, len(live), 200):
            recordings = app.save(*live[start : start + 200])
            written += len(recordings)
    return written


def _step(
    session: Session, rng: random.Random, ids: IdGenerator, now: datetime, round_: int
) -> None:
    signed_in = {s.user_id: s.id for s in session.live_sign_ins(now)}
    missing = [u for u in USERS[:2] if u not in signed_in]
    if missing:
        user = missing[0]
        attempt = ids.next_id()
        session.attempt_sign_in(
            attempt, SignInMethod.PLAIN_EMAIL, user, "digest", now + timedelta(minutes=30), 5, now
        )
        session.complete_sign_in(
            attempt, ids.next_id(), user, now + timedelta(days=30), ActiveContext(), 5, now
        )
        return
    choice = rng.random()
    if choice < 0.8:
        other = next(i for i in signed_in.values() if i != session.active_sign_in_id)
        session.switch_sign_in(other, now)
    elif choice < 0.9 and session.active_sign_in(now).user_id == USERS[0]:
        session.activate_organization(ALICE_ACME if round_ % 2 else None, now)
    else:
        session.sign_out(rng.choice(list(signed_in.values())), now)
