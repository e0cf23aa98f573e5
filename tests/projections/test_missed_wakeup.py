"""A lost wake-up delays the views by the worker's re-check interval, not until the next write.

The worker sleeps on LISTEN/NOTIFY. A NOTIFY can be lost (sent while the listening
connection was being replaced at a failover); here events reach the log with no NOTIFY at
all: rows copied in by plain SQL from another schema's log. The worker, idle on its
subscription, must still project them, within its re-check interval.

NOTIFY channels are per database and named after the events table, so every schema of the
shared test database shares one: the test makes a database of its own, where nothing else
can wake the worker.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from infrastructure.container import Services
from tests.conftest import POSTGRES_URL, require_postgres
from tests.helpers import services_for, two_sign_ins_and_a_switch_back
from tests.projections.support import count

pytestmark = pytest.mark.postgres

RECHECK = 0.5


def _position(services: Services) -> int:
    return services.projector("analytics").position()


@pytest.fixture
def own_database() -> Iterator[str]:
    """The URL of a database made for the test (dropped afterwards)."""
    require_postgres()
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    yield urlunsplit(urlsplit(POSTGRES_URL)._replace(path=f"/{name}", query=""))
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_events_that_arrive_without_a_notify_are_projected_within_the_recheck(
    own_database: str,
) -> None:
    with psycopg.connect(own_database, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA here")
        conn.execute("CREATE SCHEMA other")
    here, other = (f"{own_database}?schema={name}" for name in ("here", "other"))
    with services_for(here) as services, services_for(other) as elsewhere:
        # Given another schema's log (its NOTIFYs share the channel's name, so they are
        # sent before the worker listens), and a worker caught up with one session and
        # idle on its subscription
        two_sign_ins_and_a_switch_back(elsewhere)
        services.worker.recheck_seconds = RECHECK
        two_sign_ins_and_a_switch_back(services)
        services.worker.start()
        head = services.sessions.recorder.max_notification_id() or 0
        _until(lambda: _position(services) == head, 10)
        assert count(services.views, "analytics_sign_ins") == 2
        time.sleep(RECHECK)  # now waiting for a NOTIFY

        # When the other schema's events enter this log with no NOTIFY
        table = services.sessions.recorder.events_table_name  # type: ignore[attr-defined]
        with psycopg.connect(own_database, autocommit=True) as conn:
            copied = conn.execute(
                f"INSERT INTO here.{table} (originator_id, originator_version, topic, "
                f"state) SELECT originator_id, originator_version, topic, state "
                f"FROM other.{table} ORDER BY notification_id"
            ).rowcount
        assert copied > 0

        # Then the worker projects them anyway, within its re-check interval
        head = services.sessions.recorder.max_notification_id() or 0
        _until(lambda: _position(services) == head, 10 * RECHECK)
        assert count(services.views, "analytics_sign_ins") == 4
        assert services.worker.last_error is None


def _until(check: object, timeout: float) -> None:
    assert callable(check)
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not within {timeout}s"
        time.sleep(0.02)
