"""A database URL may list several PostgreSQL nodes; the service keeps the one that fits.

The test server is the only PostgreSQL here, so "a cluster" is a URL whose first node is a
port nobody listens on: libpq moves on to the next, and with ``read-write`` it keeps only a
writable server. The replica side (``prefer-standby``) falls back to the primary when no
standby answers, and a read through it still sees the write just made.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from application.errors import StoreUnavailable
from infrastructure.container import build_services
from infrastructure.multihost import parse_postgres_url
from infrastructure.replication import replication_status
from infrastructure.settings import Settings
from tests.helpers import ALICE, services_for

DEAD_NODE = "127.0.0.1:56099"  # in this engineer's port range; nothing listens there


def cluster_url(postgres_url: str, attrs: str) -> str:
    """``postgres_url`` with a dead node listed first and ``target_session_attrs``."""
    parts = urlsplit(postgres_url)
    user = f"{parts.username}@" if parts.username else ""
    netloc = f"{user}{DEAD_NODE},{parts.hostname}:{parts.port or 5432}"
    return f"postgresql://{netloc}{parts.path}?{parts.query}&target_session_attrs={attrs}"


def test_the_parser_reads_every_node_and_the_session_attrs() -> None:
    parsed = parse_postgres_url(
        "postgresql://ledger:p%40ss@db1:5433,db2,[::1]:5434/ledger"
        "?schema=s1&target_session_attrs=read-write"
    )
    assert parsed.hosts == "db1,db2,::1"
    assert parsed.ports == "5433,5432,5434"
    assert (parsed.user, parsed.password, parsed.dbname) == ("ledger", "p@ss", "ledger")
    assert (parsed.schema, parsed.target_session_attrs) == ("s1", "read-write")
    assert parsed.where == "db1:5433,db2:5432,::1:5434/ledger"


def test_an_unknown_session_attr_is_refused_without_echoing_the_password() -> None:
    url = "postgresql://ledger:hunter2@db1,db2/ledger?target_session_attrs=writable"
    with pytest.raises(StoreUnavailable) as raised:
        build_services(Settings(database_url=url))
    assert "target_session_attrs must be one of" in str(raised.value)
    assert "hunter2" not in str(raised.value)


def test_the_service_skips_a_dead_node_and_writes_to_the_live_one(postgres_url: str) -> None:
    writes = cluster_url(postgres_url, "read-write")
    reads = cluster_url(postgres_url, "prefer-standby")
    with services_for(writes, read_database_url=reads) as services:
        started = services.commands.start_session()
        session_id = int(started.document.id)
        signed_in = services.auth.sign_in_with_password(
            session_id, ALICE[0], ALICE[1], started.new_token
        )
        # Read-your-writes through the read URL: no standby answers, the primary does.
        assert services.queries.get_session(session_id).active_signin_id == (
            signed_in.document.active_signin_id
        )
        status = replication_status(services.sql)
        assert status is not None
        assert status.writable
        assert status.primary.endswith(f":{urlsplit(postgres_url).port or 5432}")
        assert services.replica_reads is not None
        assert sum(services.replica_reads.served.values()) > 0
