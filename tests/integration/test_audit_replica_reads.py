"""The audit's history, past states and verification read from a replica that has caught up.

With ``read_database_url`` set, each audit question is answered by the replica once it has
replayed up to the primary's last position at the time of the question, else by the primary
(within the replica wait), and each answer is counted for /health and /metrics. A "replica"
here is a real PostgreSQL database: the primary itself (always caught up), a copy of the
primary's tables taken earlier (behind), or a port nothing listens on (away). The streaming
replica of a real cluster is exercised by tests/cluster.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any, NamedTuple
from urllib.parse import parse_qs, urlsplit, urlunsplit

import psycopg
import pytest

from infrastructure.container import Services
from tests.conftest import POSTGRES_URL
from tests.helpers import services_for, two_sign_ins_and_a_switch_back
from tests.serving import free_port

pytestmark = pytest.mark.postgres


class Answers(NamedTuple):
    """What an auditor asks of one session, and the store's verified head."""

    history: list[Any]
    states: list[Any]
    head_position: int
    head_hash: str


def _answers(services: Services, session_id: int) -> Answers:
    history = services.audit.history(session_id)
    states = [services.audit.state(session_id, version=e.version) for e in history]
    report = services.audit.verify()
    assert report.ok, report.problem
    return Answers(history, states, report.head_position, report.head_hash)


def _served(services: Services) -> dict[str, int]:
    assert services.replica_reads is not None
    return dict(services.replica_reads.served)


def test_a_caught_up_replica_answers_the_audit_with_the_primarys_answers(
    postgres_url: str,
) -> None:
    with services_for(postgres_url) as plain:
        session_id = two_sign_ins_and_a_switch_back(plain)
        expected = _answers(plain, session_id)
    with services_for(postgres_url, read_database_url=postgres_url) as services:
        before = _served(services)
        assert _answers(services, session_id) == expected
        after = _served(services)
    # history, one state per event, and verify: each answered by the replica
    questions = 1 + len(expected.history) + 1
    assert after["replica"] - before["replica"] == questions
    assert after["primary"] == before["primary"]


@pytest.fixture
def stale_copy_url(postgres_url: str) -> Iterator[str]:
    """A URL for another schema, filled later with a copy of the primary's tables."""
    schema = f"r_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    parts = urlsplit(postgres_url)
    query = parse_qs(parts.query)
    query["schema"] = [schema]
    yield urlunsplit(parts._replace(query="&".join(f"{k}={v[0]}" for k, v in query.items())))
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def _copy_tables(from_url: str, to_url: str) -> None:
    source = parse_qs(urlsplit(from_url).query)["schema"][0]
    target = parse_qs(urlsplit(to_url).query)["schema"][0]
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        tables = conn.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = %s AND table_type = 'BASE TABLE'",
            (source,),
        ).fetchall()
        for (table,) in tables:
            conn.execute(f"CREATE TABLE {target}.{table} AS TABLE {source}.{table}")


def test_a_replica_behind_the_primary_leaves_the_audit_to_the_primary(
    postgres_url: str, stale_copy_url: str
) -> None:
    with services_for(postgres_url) as plain:
        earlier = two_sign_ins_and_a_switch_back(plain)
        _copy_tables(postgres_url, stale_copy_url)  # the replica stops replaying here
        later = two_sign_ins_and_a_switch_back(plain)
        expected = _answers(plain, later)
    settings: dict[str, Any] = {
        "read_database_url": stale_copy_url,
        "read_replica_wait_seconds": 0.05,
    }
    with services_for(postgres_url, **settings) as services:
        before = _served(services)
        # The later session is not on the replica; the primary answers, with all of it.
        assert _answers(services, later) == expected
        middle = _served(services)
        assert middle["replica"] == before["replica"]
        assert middle["primary"] - before["primary"] == 1 + len(expected.history) + 1
        # Even the earlier session's history is read where everything up to now is.
        assert len(services.audit.history(earlier)) == len(plain_history(postgres_url, earlier))
        assert _served(services)["primary"] == middle["primary"] + 1


def plain_history(url: str, session_id: int) -> list[object]:
    with services_for(url) as plain:
        return list(plain.audit.history(session_id))


def test_an_unreachable_replica_leaves_the_audit_to_the_primary(postgres_url: str) -> None:
    away = urlunsplit(urlsplit(postgres_url)._replace(netloc=f"postgres@127.0.0.1:{free_port()}"))
    with services_for(postgres_url) as plain:
        session_id = two_sign_ins_and_a_switch_back(plain)
        expected = _answers(plain, session_id)
    with services_for(postgres_url, read_database_url=away, database_timeout_seconds=1) as services:
        before = _served(services)
        assert _answers(services, session_id) == expected
        after = _served(services)
    assert after["replica"] == before["replica"]
    assert after["primary"] - before["primary"] == 1 + len(expected.history) + 1
