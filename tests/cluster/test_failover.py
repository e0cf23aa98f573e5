"""The cluster of ``deploy/cluster`` loses its primary, its etcd and an API node, under traffic.

One cluster (etcd, three Patroni-managed PostgreSQL 15 nodes, two API nodes) serves the
whole module; the faults run in order, each while browsers hit both API nodes:

1. SIGKILL the primary's postmaster: Patroni promotes the synchronous standby;
2. once the old primary has rejoined as a replica, SIGKILL the new primary's postmaster;
3. stop etcd for longer than the leader lock's TTL: with ``failsafe_mode`` the primary, which
   still reaches every member, stays primary, so writes go on; then etcd comes back;
4. stop every PostgreSQL node for 12 s: nothing is writable, requests answer 503 with
   ``Retry-After`` within the 5 s connection wait, /health answers 503; then ``deploy/cluster
   up`` and the same API processes work again;
5. SIGKILL one API node: its browsers move to the other node; it is started again.

After each: every write answered 2xx is in the history, in order, once; ``audit verify``
passes; the views equal a fresh rebuild; failed answers were only 503
``SERVICE_UNAVAILABLE`` with ``Retry-After`` (or, from a killed API node, no answer at
all), never a 500 and never a hang. The time without a writable primary and the failed
requests are printed (``pytest -s``) and recorded in docs/cluster.md.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import pytest
from pydantic import SecretStr

from infrastructure.container import Services, build_services
from infrastructure.settings import Settings
from tests.cluster.checks import (
    assert_acknowledged_writes_kept,
    assert_audit_verifies,
    assert_views_equal_a_rebuild,
)
from tests.cluster.control import (
    API_NODES,
    BASE_PORT,
    DB_NODES,
    ROOT,
    Cluster,
    require_cluster_tools,
)
from tests.cluster.traffic import Ledger, Traffic
from tests.projections.support import console_script

pytestmark = [
    pytest.mark.slow,  # a Patroni/etcd cluster, faults and traffic
    pytest.mark.xdist_group("cluster"),  # one worker runs the module's fixture, once
]

DEMO_DIRECTORY = ROOT / "infrastructure" / "demo" / "demo-directory.json"
WRITES_BEFORE = 40
WRITES_AFTER = 40


@dataclass
class Harness:
    """The running cluster, its settings, and services of our own on it for the checks."""

    cluster: Cluster
    settings: dict[str, str]
    services: Services


@pytest.fixture(scope="module")
def harness() -> Iterator[Harness]:
    require_cluster_tools()
    cluster = Cluster()
    try:
        cluster.run("up")
        settings = cluster.settings()
        subprocess.run(
            [console_script(), "directory", "load", str(DEMO_DIRECTORY)],
            env={**os.environ, **settings, "PYTHONPATH": str(ROOT)},
            check=True,
            capture_output=True,
            timeout=120,
        )
        services = build_services(
            Settings(
                database_url=settings["SESSION_LEDGER_DATABASE_URL"],
                audit_key=SecretStr(settings["SESSION_LEDGER_AUDIT_KEY"]),
                rate_limits=False,
            )
        )
        try:
            yield Harness(cluster, settings, services)
        finally:
            services.close()
    finally:
        cluster.close()


def under_traffic(
    harness: Harness,
    name: str,
    fault: Callable[[], None],
    recovered: Callable[[], bool],
    allowed: set[str],
) -> Ledger:
    """Traffic, the fault, recovery, traffic again; then every check; the figures printed."""
    urls = {node: Cluster.api_url(node) for node in API_NODES}
    with Traffic(urls) as traffic:
        traffic.wait_for_writes(WRITES_BEFORE)
        struck = time.monotonic()
        fault()
        harness.cluster.wait_until(f"recovery from: {name}", recovered, timeout=180)
        traffic.wait_for_writes(WRITES_AFTER, timeout=180)
    ledger = traffic.ledger
    failed = ledger.failures(struck)
    unwritable = ledger.longest_write_gap(struck)
    kept = assert_acknowledged_writes_kept(harness.services, ledger)
    verified = assert_audit_verifies(harness.settings)
    assert_views_equal_a_rebuild(harness.services)
    print(
        f"\n[cluster] {name}: {len(ledger.answers)} requests, {kept} acknowledged writes all "
        f"in the history; longest time without a write answered {unwritable:.1f}s; "
        f"failed requests {sum(failed.values())} {dict(failed)}; audit: {verified}"
    )
    assert ledger.hangs == 0
    assert ledger.stale_reads == 0
    assert set(failed) <= allowed, dict(failed)
    no_retry_after = [a for a in ledger.answers if a.status == 503 and not a.retry_after]
    assert not no_retry_after
    return ledger


SERVICE_UNAVAILABLE = "503 SERVICE_UNAVAILABLE"


def test_the_primary_dies_and_its_synchronous_standby_takes_over(harness: Harness) -> None:
    cluster = harness.cluster
    cluster.wait_until("a healthy cluster", cluster.healthy)
    old = cluster.primary()
    assert old is not None

    def promoted() -> bool:
        return cluster.primary() not in (None, old)

    under_traffic(
        harness,
        f"SIGKILL the primary's postmaster (db{old})",
        lambda: cluster.kill_postmaster(old),
        promoted,
        {SERVICE_UNAVAILABLE},
    )
    # The old primary comes back by itself, rewound, as a replica of the new one.
    cluster.wait_until(f"db{old} rejoining as a replica", cluster.healthy, timeout=180)
    assert cluster.member(old).get("role") == "replica"
    new = cluster.primary()
    assert new is not None
    # Both API nodes' /health and /metrics name the new primary and both replicas' lag.
    for api in API_NODES:
        cluster.wait_until(
            f"api{api} reporting db{new} as primary", lambda api=api: reports(api, new)
        )


def reports(api: int, primary: int) -> bool:
    """API node ``api``'s /health and /metrics say writes go to ``primary``, list the other
    two nodes as streaming replicas, one of them synchronous, with their lag, count reads
    the replica answered, and show the projections caught up by a worker without error."""
    health = httpx.get(f"{Cluster.api_url(api)}/health", timeout=10).json()["data"]
    database = health["database"]
    replicas = {r["name"]: r for r in database["replicas"]}
    node = f"127.0.0.1:{BASE_PORT + 10 + primary}"
    metrics = httpx.get(f"{Cluster.api_url(api)}/metrics", timeout=10).text
    return (
        database["primary"] == node
        and database["writable"]
        and set(replicas) == {f"db{n}" for n in DB_NODES if n != primary}
        and all(r["state"] == "streaming" for r in replicas.values())
        and all(isinstance(r["replay_lag_bytes"], int) for r in replicas.values())
        and sorted(r["sync_state"] for r in replicas.values()) == ["async", "sync"]
        and f'session_ledger_database_primary{{node="{node}"}} 1.0' in metrics
        and "session_ledger_replica_lag_bytes{" in metrics
        and database["reads"]["replica"] > 0
        and 'session_ledger_reads_total{served_by="replica"}' in metrics
        # The projection worker (lease, LISTEN) works on the new primary again.
        and health["worker_error"] is None
        and all(p["lag"] == 0 for p in health["projections"])
    )


def test_the_new_primary_dies_too_after_the_old_one_rejoined(harness: Harness) -> None:
    cluster = harness.cluster
    cluster.wait_until("a healthy cluster", cluster.healthy)
    old = cluster.primary()
    assert old is not None
    under_traffic(
        harness,
        f"SIGKILL the new primary's postmaster (db{old})",
        lambda: cluster.kill_postmaster(old),
        lambda: cluster.primary() not in (None, old),
        {SERVICE_UNAVAILABLE},
    )
    cluster.wait_until(f"db{old} rejoining as a replica", cluster.healthy, timeout=180)


def test_etcd_down_the_primary_stays_writable_in_failsafe_mode(harness: Harness) -> None:
    cluster = harness.cluster
    cluster.wait_until("a healthy cluster", cluster.healthy)
    primary = cluster.primary()
    outage = 30.0  # longer than the leader lock's ttl (20 s): without failsafe_mode, a demotion

    def etcd_away_for_a_while() -> None:
        cluster.run("stop", "etcd")
        time.sleep(outage)
        cluster.run("up")

    under_traffic(
        harness,
        f"etcd stopped for {outage:.0f}s",
        etcd_away_for_a_while,
        cluster.healthy,
        {SERVICE_UNAVAILABLE},
    )
    assert cluster.primary() == primary  # no failover happened


def test_no_database_node_answers_clean_503s_then_recovery(harness: Harness) -> None:
    cluster = harness.cluster
    cluster.wait_until("a healthy cluster", cluster.healthy)
    outage = 12.0  # longer than the 5 s a request waits for a connection
    health: list[int] = []

    def every_database_node_away() -> None:
        for node in DB_NODES:
            cluster.run("stop", f"db{node}")
        deadline = time.monotonic() + outage
        while time.monotonic() < deadline:
            health.append(httpx.get(f"{Cluster.api_url(1)}/health", timeout=10).status_code)
            time.sleep(1)
        cluster.run("up")

    ledger = under_traffic(
        harness,
        f"every PostgreSQL node stopped for {outage:.0f}s",
        every_database_node_away,
        cluster.healthy,
        {SERVICE_UNAVAILABLE},
    )
    # Nothing was writable, and the service said so: 503s with Retry-After, /health 503.
    assert ledger.failures()[SERVICE_UNAVAILABLE] >= 1
    assert 503 in health


def test_an_api_node_dies_and_the_other_serves_its_browsers(harness: Harness) -> None:
    cluster = harness.cluster
    cluster.wait_until("a healthy cluster", cluster.healthy)
    killed: list[float] = []

    def kill_api1() -> None:
        killed.append(time.monotonic())
        cluster.kill("api1")

    ledger = under_traffic(
        harness,
        "SIGKILL API node api1",
        kill_api1,
        lambda: True,
        {"0 NO_ANSWER", SERVICE_UNAVAILABLE},
    )
    # Its browsers lost their connection (or were refused) and went on with api2.
    assert ledger.failures(killed[0])["0 NO_ANSWER"] >= 1
    assert all(a.node == 2 for a in ledger.answers if a.started > killed[0] + 1)
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{Cluster.api_url(1)}/health", timeout=5)
    cluster.run("up")  # and it starts again
    assert httpx.get(f"{Cluster.api_url(1)}/health", timeout=10).status_code == 200
