"""A store that does not answer: 503 with Retry-After within the configured time, /health
503 at once, recovery without a restart; and a command either answers what it committed or
commits nothing.

PostgreSQL runs as a private cluster made for the test and stopped under it (never the
machine's shared server); SQLite is made busy by another connection holding its write lock.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest

from api.app import create_app
from tests.helpers import ALICE, BOB, services_for
from tests.outage.cluster import PrivateCluster, private_cluster
from tests.serving import serving

pytestmark = pytest.mark.slow  # a private PostgreSQL server stopped and started

# The service gives up on the store after this long; the client waits four times as long,
# so a hang (as before: 30-50 s) fails the test, while a slow machine does not.
TIMEOUT = 2
CLIENT_TIMEOUT = 4 * TIMEOUT + 10


@pytest.fixture
def cluster() -> Iterator[PrivateCluster]:
    with private_cluster() as made:
        yield made


def _sign_in(http: httpx.Client, user: tuple[str, str, str]) -> httpx.Response:
    form = {"email": user[0], "password": user[1], "strategy": "plain_email"}
    return http.post("/auth/signin", data=form)


def _unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["data"] is None
    assert [e["code"] for e in body["errors"]] == ["SERVICE_UNAVAILABLE"]
    assert int(response.headers["Retry-After"]) >= 1
    assert response.headers["X-Request-Id"]


def _until_ok(http: httpx.Client, path: str) -> httpx.Response:
    """The first 200 from ``path``: the pool reconnects in the background after a restart."""
    for _ in range(60):
        response = http.get(path)
        if response.status_code == 200:
            return response
        assert response.status_code == 503, response.text
        time.sleep(0.5)
    pytest.fail(f"{path} did not recover: {response.text}")


def test_a_stopped_postgres_is_503_then_recovers_without_a_restart(
    cluster: PrivateCluster,
) -> None:
    settings: dict[str, Any] = {"database_timeout_seconds": TIMEOUT, "cookie_secure": False}
    with (
        services_for(cluster.url, **settings) as services,
        serving(create_app(services=services, run_worker=True)) as base,
        httpx.Client(base_url=base, timeout=CLIENT_TIMEOUT) as http,
    ):
        # Given Alice signed in
        assert _sign_in(http, ALICE).status_code == 200
        cookie = http.cookies["session_id"]

        # When the database stops under the service
        cluster.stop()

        # Then reads, commands and sign-ins answer 503 with Retry-After (not a hang, not 500)
        _unavailable(http.get("/session"))
        alice = "1" * 18
        _unavailable(http.post("/session/switch-sign-in", params={"sign_in_id": alice}))
        _unavailable(_sign_in(http, BOB))
        assert http.cookies["session_id"] == cookie
        # and /health says what is down
        health = http.get("/health")
        _unavailable(health)
        assert "database" in health.json()["message"]

        # When the database is back
        cluster.start()

        # Then the same service answers again, with the same cookie and Alice still in
        data = _until_ok(http, "/session").json()["data"]
        assert [s["user_id"] for s in data["signins"]] == [ALICE[2]]
        assert _sign_in(http, BOB).status_code == 200
        assert _until_ok(http, "/health").json()["data"]["status"] == "ok"


def test_a_locked_sqlite_is_503_then_answers_when_released(sqlite_url: str) -> None:
    settings: dict[str, Any] = {"database_timeout_seconds": 1, "cookie_secure": False}
    with (
        services_for(sqlite_url, **settings) as services,
        serving(create_app(services=services)) as base,
        httpx.Client(base_url=base, timeout=CLIENT_TIMEOUT) as http,
    ):
        assert _sign_in(http, ALICE).status_code == 200
        # Given another process holding the write lock
        holder = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        try:
            # Then a command that must write answers 503 once the busy timeout runs out
            _unavailable(_sign_in(http, BOB))
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        # and, the lock released, it goes through
        assert _sign_in(http, BOB).status_code == 200


def _rename_users_table(url: str, services: Any, back: bool) -> None:
    names = ("directory_users", "directory_users_away")
    old, new = names[::-1] if back else names
    if url.startswith("sqlite"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as lite:
            lite.execute(f"ALTER TABLE {old} RENAME TO {new}")
        return
    schema = services.sql.datastore.schema
    with psycopg.connect(url.split("?")[0], autocommit=True) as pg:
        pg.execute(f"ALTER TABLE {schema}.{old} RENAME TO {new}")


def test_a_command_that_cannot_render_its_answer_commits_nothing(
    durable_database_url: str,
) -> None:
    # (no cache of user profiles, so that rendering reads the directory)
    settings: dict[str, Any] = {"cookie_secure": False, "directory_cache_seconds": 0}
    with (
        services_for(durable_database_url, **settings) as services,
        serving(create_app(services=services)) as base,
        httpx.Client(base_url=base, timeout=CLIENT_TIMEOUT) as http,
    ):
        # Given Alice then Bob signed in (Bob active)
        alice = _sign_in(http, ALICE).json()["data"]["active_signin_id"]
        assert _sign_in(http, BOB).status_code == 200
        before = services.sessions.recorder.max_notification_id()

        # When the directory cannot be read while Alice's sign-in is switched to
        _rename_users_table(durable_database_url, services, back=False)
        try:
            response = http.post("/session/switch-sign-in", params={"sign_in_id": alice})
        finally:
            _rename_users_table(durable_database_url, services, back=True)

        # Then the answer is an error, X-Request-Id and all, and nothing was committed:
        # a command never fails after its commit
        assert services.sessions.recorder.max_notification_id() == before
        assert response.status_code == 500, response.text
        assert response.json()["errors"][0]["code"] == "INTERNAL_ERROR"
        assert response.headers["X-Request-Id"]
        data = http.get("/session").json()["data"]
        assert data["active_signin_id"] != alice
