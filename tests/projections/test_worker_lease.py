"""One projection worker per store: the lease, and failing over when its holder goes away.

- two services on one durable store (like two ``serve --workers`` processes): exactly one
  worker holds the lease, and it projects the commands written through either of them;
- when the leader closes, the other worker takes the lease within a few seconds and projects
  what was written before and after the failover;
- ``WorkerLease`` itself: exclusive per PostgreSQL schema (and independent across schemas),
  exclusive per SQLite file, always held in memory;
- a PostgreSQL lease whose connection the server killed: the lock is free for another lease,
  and the killed lease should notice it lost it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from infrastructure.clock import SettableClock
from infrastructure.container import Services
from infrastructure.persistence import open_sql_database, store_config
from infrastructure.projections.lease import WorkerLease
from infrastructure.projections.worker import LEASE_RETRY_SECONDS
from infrastructure.settings import Settings
from tests.conftest import POSTGRES_URL, fresh_postgres_url
from tests.helpers import services_for
from tests.projections.support import START, count
from tests.projections.test_worker_and_ops import (
    PROJECTIONS,
    eventually,
    head,
    lag,
    sign_in_two_and_switch,
)

pytestmark = pytest.mark.slow  # workers waiting out lease retries

# LEASE_RETRY_SECONDS is 2s: a waiting worker takes over well within this.
FAILOVER_TIMEOUT = 10.0


@pytest.fixture
def services(durable_database_url: str) -> Iterator[Services]:
    """As ``durable_services`` in test_worker_and_ops (a fixture imported here trips F811)."""
    with services_for(durable_database_url, clock=SettableClock(START), rate_limits=False) as built:
        yield built


@contextmanager
def more_services(url: str) -> Iterator[Services]:
    """Another process's services on the same store (the directory is already loaded)."""
    with services_for(url, clock=SettableClock(START), rate_limits=False, load_demo=False) as built:
        yield built


def holders(*all_services: Services) -> list[Services]:
    """Those whose worker holds the lease."""
    found = []
    for services in all_services:
        assert services.worker.lease is not None
        if services.worker.lease.held:
            found.append(services)
    return found


def caught_up(services: Services) -> bool:
    return all(lag(services, name) == 0 for name in PROJECTIONS)


def outlast_a_retry(since: float) -> None:
    """Sleep until a waiting worker has tried the lease again at least once since ``since``."""
    time.sleep(max(0.0, since + LEASE_RETRY_SECONDS + 0.5 - time.monotonic()))


def store_lease_taken(services: Services) -> bool:
    """Whether a fresh lease on the store is refused (someone really holds the lock)."""
    probe = WorkerLease(services.views.datastore)
    try:
        return probe.acquire() is False
    finally:
        probe.release()


def assert_store_lease_taken(services: Services) -> None:
    """A fresh lease on the store is refused: the holder's lease is real, not just a flag."""
    probe = WorkerLease(services.views.datastore)
    try:
        assert probe.acquire() is False
    finally:
        probe.release()


# Two workers on one store -------------------------------------------------------------------


def test_two_workers_on_one_store_elect_one_which_projects_everyones_commands(
    services: Services, durable_database_url: str
) -> None:
    with more_services(durable_database_url) as other:
        # Given two processes' workers started together
        started = time.monotonic()
        services.worker.start()
        other.worker.start()
        # Then one of them takes the lease
        eventually("one lease held", lambda: len(holders(services, other)) == 1)
        [leader] = holders(services, other)
        follower = other if leader is services else services
        # When commands arrive through the follower's API (another process, for the leader)
        with TestClient(create_app(services=follower), base_url="https://testserver") as browser:
            sign_in_two_and_switch(browser)
        written = head(follower)
        # Then the leader, the only one working, projects them all
        eventually("both projections caught up", lambda: caught_up(leader))
        assert caught_up(follower)
        assert leader.projector("analytics").position() == written
        assert count(leader.views, "analytics_sign_ins") == 2
        assert count(leader.views, "analytics_switches") == 1
        # And however long the follower keeps trying, the lease stays with the leader
        outlast_a_retry(started)
        assert holders(services, other) == [leader]
        assert_store_lease_taken(leader)
        assert leader.worker.last_error is None
        assert follower.worker.last_error is None


def test_when_the_leader_closes_the_other_worker_takes_over(
    services: Services, durable_database_url: str
) -> None:
    follower = services
    with more_services(durable_database_url) as leader:
        # Given a leader holding the lease and a follower waiting for it
        leader.worker.start()
        eventually("leader holds the lease", lambda: holders(leader) == [leader])
        started = time.monotonic()
        follower.worker.start()
        leader.commands.start_session()
        eventually("leader caught up", lambda: caught_up(leader))
        outlast_a_retry(started)
        assert holders(leader, follower) == [leader]
    # When the leader's process closes (it releases the lease)
    assert leader.worker.lease is not None
    assert leader.worker.lease.held is False
    # and commands arrive while nobody is working
    follower.commands.start_session()
    # Then the follower takes the lease within a few seconds
    eventually(
        "follower holds the lease", lambda: holders(follower) == [follower], FAILOVER_TIMEOUT
    )
    # And projects what was written before it took over and whatever comes after
    with TestClient(create_app(services=follower), base_url="https://testserver") as browser:
        sign_in_two_and_switch(browser)
    written = head(follower)
    eventually("caught up after failover", lambda: caught_up(follower))
    assert follower.projector("analytics").position() == written
    assert count(follower.views, "analytics_sign_ins") == 2
    assert_store_lease_taken(follower)
    assert follower.worker.last_error is None


# WorkerLease itself -------------------------------------------------------------------------


@contextmanager
def lease_on(url: str) -> Iterator[WorkerLease]:
    """A lease on the datastore of a store of its own (as another process would open it)."""
    database = open_sql_database(store_config(Settings(database_url=url)))
    lease = WorkerLease(database.datastore)
    try:
        yield lease
    finally:
        lease.release()
        database.close()


def test_a_postgres_lease_is_exclusive_per_schema(postgres_url: str) -> None:
    with lease_on(postgres_url) as first, lease_on(postgres_url) as second:
        assert first.acquire() is True
        assert second.acquire() is False
        assert second.held is False
        # Asking again changes nothing; the holder keeps it
        assert first.acquire() is True
        assert second.acquire() is False
        first.release()
        assert first.held is False
        assert second.acquire() is True
        assert first.acquire() is False


def test_postgres_leases_on_different_schemas_are_independent(postgres_url: str) -> None:
    with (
        fresh_postgres_url() as other_url,
        lease_on(postgres_url) as here,
        lease_on(other_url) as there,
        lease_on(postgres_url) as also_here,
    ):
        assert here.acquire() is True
        assert there.acquire() is True
        # and each is still exclusive within its own schema
        assert also_here.acquire() is False


def test_a_sqlite_lease_is_exclusive_per_database_file(sqlite_url: str, tmp_path: Path) -> None:
    with lease_on(sqlite_url) as first, lease_on(sqlite_url) as second:
        assert first.acquire() is True
        assert second.acquire() is False
        lock_file = tmp_path / "session-ledger.db.projections.lock"
        assert lock_file.exists()
        assert lock_file.stat().st_mode & 0o777 == 0o600
        first.release()
        assert first.held is False
        assert second.acquire() is True
        assert first.acquire() is False


def test_an_in_memory_lease_is_always_held() -> None:
    with lease_on("memory://") as first, lease_on("memory://") as second:
        assert first.acquire() is True
        assert second.acquire() is True
        assert first.still_held() is True
        first.release()
        assert first.acquire() is True


# A lease whose connection the server killed -------------------------------------------------


def terminate_connection_of(lease: WorkerLease) -> None:
    """Kill the lease's PostgreSQL backend from another connection, and wait until it is gone."""
    connection = lease._connection
    assert connection is not None
    pid = connection.info.backend_pid
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        row = admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()
        assert row == (True,)

        def gone() -> bool:
            query = "SELECT count(*) FROM pg_stat_activity WHERE pid = %s"
            return admin.execute(query, (pid,)).fetchone() == (0,)

        eventually("backend terminated", gone)


def test_the_lock_of_a_killed_lease_connection_is_free_for_another(postgres_url: str) -> None:
    with lease_on(postgres_url) as killed, lease_on(postgres_url) as other:
        assert killed.acquire() is True
        assert other.acquire() is False
        terminate_connection_of(killed)
        eventually("another lease acquires", other.acquire, timeout=5)


def test_a_lease_whose_connection_was_killed_notices_it_lost_it(postgres_url: str) -> None:
    with lease_on(postgres_url) as killed, lease_on(postgres_url) as other:
        assert killed.acquire() is True
        terminate_connection_of(killed)
        eventually("killed lease reports it lost", lambda: not killed.still_held(), timeout=3)
        assert killed.held is False
        eventually("another lease acquires", other.acquire, timeout=5)


def test_a_leader_whose_lease_connection_was_killed_gives_it_up_and_one_leader_remains(
    postgres_url: str,
) -> None:
    with more_services(postgres_url) as leader, more_services(postgres_url) as follower:
        leader.worker.start()
        eventually("leader holds the lease", lambda: holders(leader) == [leader])
        follower.worker.start()
        assert leader.worker.lease is not None
        terminate_connection_of(leader.worker.lease)
        # A new event wakes the leader, which checks its lease before working on it
        follower.commands.start_session()
        # It notices, gives the lease up and competes again: afterwards exactly one of the
        # two holds it (really: a third lease is refused) and new events are projected.
        eventually(
            "exactly one leader again, holding the real lock",
            lambda: len(holders(leader, follower)) == 1 and store_lease_taken(follower),
            FAILOVER_TIMEOUT,
        )
        follower.commands.start_session()
        eventually("projected", lambda: caught_up(follower), FAILOVER_TIMEOUT)
