"""Our account switch beside better-auth's multi-session ``set-active`` and a FastAPI no-op.

    python -m bench.peer [--rounds 2] [--duration 8] [--warmup 2] [--browsers 256]

Needs wrk, node + npm (better-auth is installed from ``bench/peer/package-lock.json``) and
PostgreSQL (``--database-url``; fresh databases are created there and dropped afterwards).

1. Seeds ``--browsers`` sessions of ours (Alice and Bob signed in, Bob active) on PostgreSQL
   (one store for one worker, one for ``--workers 2``) and on SQLite, and starts
   ``session-ledger serve --demo`` on each.
2. Starts better-auth with ``multiSession`` on PostgreSQL and on SQLite and signs Alice and
   Bob into as many browsers with real sign-in requests.
3. Checks by hand-rolled requests that a switch really changes the active account, on both.
4. Starts bench/noop_app.py (same uvicorn settings as ``serve``) answering our routes with
   bytes saved from real answers, and bench/lean_switch.py: the least a durable switch can
   be in Python (async route, cookie HMAC cached, one INSERT), the floor of any design here.
5. ``--rounds`` times, interleaved: each target under the same wrk pattern (4 threads,
   32 connections, each thread rotating through its share of browsers, each visit switching
   to the account that is not active; the reads GET /session and /session/token, on
   PostgreSQL and on SQLite, with the same browsers), ``--warmup`` s discarded then
   ``--duration`` s measured; and one-connection runs of the switches on PostgreSQL and
   the no-op.
6. Prints req/s, p50/p90/p99, errors (socket + non-2xx), server CPU per request (all
   processes of the server, from /proc) and PostgreSQL backend CPU per request (the
   backends of that server's database), then the issue's ratios with MET / NOT MET, and
   the same ratios for the lean sketch (marked "(floor)": not targets, what bounds them).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from bench import better_auth
from bench.common import DEFAULT_URL, SeededSession, load_average, seed_sessions, verdict
from bench.switch import (
    HOST,
    PATH,
    Row,
    Server,
    WrkResult,
    free_port,
    lua_script,
    our_rows,
    request,
    run_wrk,
)
from infrastructure.container import build_services
from infrastructure.settings import Settings

# CPU accounting ------------------------------------------------------------------------


def _cpu_ticks(pid: int) -> tuple[int, int] | None:
    """(process group, utime + stime ticks) of a live process."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[2]), int(fields[11]) + int(fields[12])


def group_ticks(pgid: int) -> dict[int, int]:
    """CPU ticks of every process in a process group (the server and all its children)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            got = _cpu_ticks(int(entry.name))
            if got is not None and got[0] == pgid:
                found[int(entry.name)] = got[1]
    return found


def backend_ticks(monitor: psycopg.Connection[Any], database: str | None) -> dict[int, int]:
    """CPU ticks of the PostgreSQL backends connected to ``database`` (same machine)."""
    if database is None:
        return {}
    pids = [
        int(r[0])
        for r in monitor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (database,),
        )
    ]
    found = {}
    for pid in pids:
        got = _cpu_ticks(pid)
        if got is not None:
            found[pid] = got[1]
    return found


def _spent(before: dict[int, int], after: dict[int, int]) -> float:
    """CPU seconds spent between two samples (processes born in between count from zero)."""
    ticks = sum(t - before.get(pid, 0) for pid, t in after.items())
    return ticks / os.sysconf("SC_CLK_TCK")


# Targets -------------------------------------------------------------------------------


@dataclass
class Target:
    """One thing wrk drives: a server, a script, and where its database CPU goes."""

    name: str
    server: Server
    port: int
    script: Path
    database: str | None = None
    runs: list[tuple[WrkResult, float, float]] = field(default_factory=list)

    def run(
        self, monitor: psycopg.Connection[Any], connections: int, threads: int, seconds: float
    ) -> None:
        """One measured wrk run, with the CPU of the server and of its backends."""
        pgid = self.server.process.pid
        server0, db0 = group_ticks(pgid), backend_ticks(monitor, self.database)
        result = run_wrk(self.port, self.script, threads, connections, seconds)
        server1, db1 = group_ticks(pgid), backend_ticks(monitor, self.database)
        self.runs.append((result, _spent(server0, server1), _spent(db0, db1)))

    def summary(self) -> Summary:
        """All rounds together: total rate, medians of the per-round percentiles."""
        results = [r for r, _, _ in self.runs]
        requests = sum(r.requests for r in results)
        return Summary(
            name=self.name,
            rate=requests / sum(r.seconds for r in results),
            p50=statistics.median(r.p50_ms for r in results),
            p90=statistics.median(r.p90_ms for r in results),
            p99=statistics.median(r.p99_ms for r in results),
            errors=sum(r.errors for r in results),
            server_ms=1000 * sum(c for _, c, _ in self.runs) / max(requests, 1),
            db_ms=1000 * sum(d for _, _, d in self.runs) / max(requests, 1),
        )


@dataclass(frozen=True)
class Summary:
    """What one target measured over all rounds."""

    name: str
    rate: float
    p50: float
    p90: float
    p99: float
    errors: int
    server_ms: float
    db_ms: float

    def line(self) -> str:
        return (
            f"{self.name:50}{self.rate:9,.0f}{self.p50:8.1f}{self.p90:8.1f}{self.p99:8.1f}"
            f"{self.errors:7d}{self.server_ms:11.2f}{self.db_ms:9.2f}"
        )


HEADER = (
    f"{'':50}{'req/s':>9}{'p50':>8}{'p90':>8}{'p99':>8}{'errors':>7}"
    f"{'server CPU':>11}{'db CPU':>9}   (ms; CPU ms per request)"
)


@contextmanager
def fresh_databases(base_url: str, names: Sequence[str]) -> Iterator[dict[str, str]]:
    """New databases on the server of ``base_url``; yields name -> URL; dropped after."""
    prefix = f"bench_peer_{uuid.uuid4().hex[:8]}"
    made: dict[str, str] = {}
    server = base_url.rsplit("/", 1)[0]
    try:
        with psycopg.connect(base_url, autocommit=True) as conn:
            for name in names:
                conn.execute(f"CREATE DATABASE {prefix}_{name}")
                made[name] = f"{server}/{prefix}_{name}"
        yield made
    finally:
        with psycopg.connect(base_url, autocommit=True) as conn:
            for url in made.values():
                conn.execute(f"DROP DATABASE IF EXISTS {url.rsplit('/', 1)[1]} WITH (FORCE)")


def database_of(url: str) -> str:
    """The database name in a postgresql:// URL."""
    return url.rsplit("/", 1)[1].split("?")[0]


def seed(url: str, count: int) -> list[SeededSession]:
    """Our sessions, seeded through the domain as bench.switch does."""
    services = build_services(Settings(database_url=url))
    try:
        return seed_sessions(services, count)
    finally:
        services.close()


def check_our_switch(port: int, s: SeededSession) -> bytes:
    """By hand: switch to Alice and back to Bob; each answer must name that sign-in active."""
    body = b""
    for target in (s.alice_sign_in, s.bob_sign_in):
        status, body = request(port, "POST", f"{PATH}?sign_in_id={target}", s.token)
        active = json.loads(body)["data"]["active_signin_id"] if status == 200 else None
        if active != str(target):
            raise SystemExit(f"our switch to {target} answered {status}, active {active}")
    return body


def start_ours(
    stack: ExitStack, name: str, url: str, workdir: Path, workers: int = 1, port: int = 0
) -> tuple[Server, int]:
    """``session-ledger serve --demo`` on ``url``, as bench.switch starts it."""
    serve = shutil.which("session-ledger")
    command = [serve] if serve else [sys.executable, "-m", "api.cli"]
    port = port or free_port()
    env = {
        **os.environ,
        "SESSION_LEDGER_DATABASE_URL": url,
        "SESSION_LEDGER_COOKIE_SECURE": "false",
    }
    for attempt in range(1, 4):
        server = Server(name, [
            *command, "serve", "--host", HOST, "--port", str(port), "--demo",
            "--workers", str(workers),
        ], env, workdir / f"{name}.log")  # fmt: skip
        stack.callback(server.stop)
        try:
            server.wait_ready(port, "/health")
        except SystemExit:
            # The shared PostgreSQL can be out of connections for a moment (others' tests).
            if attempt == 3 or "too many clients" not in server.tail(40):
                raise
            server.stop()
            print(f"{name}: PostgreSQL had no connection to spare; starting again", flush=True)
            time.sleep(5)
            continue
        break
    return server, port


def start_peer(
    stack: ExitStack, name: str, store: str, workdir: Path, browsers: int
) -> tuple[Server, int, list[better_auth.Browser]]:
    """better-auth on ``store``, migrated, with ``browsers`` browsers signed in and checked."""
    env = better_auth.server_env()
    better_auth.migrate(store, env)
    port = free_port()
    server = Server(name, better_auth.server_command(port, store), env, workdir / f"{name}.log")
    stack.callback(server.stop)
    server.wait_ready(port, "/ready")
    started = time.perf_counter()
    signed_in = better_auth.sign_in_browsers(port, browsers)
    better_auth.check_set_active(port, signed_in[0])
    print(
        f"{name}: {len(signed_in)} browsers x 2 sign-ins in {time.perf_counter() - started:.0f}s;"
        " set-active checked by hand (get-session follows it)",
        flush=True,
    )
    return server, port, signed_in


def write_script(workdir: Path, name: str, rows: Sequence[Row], method: str, port: int) -> Path:
    headers = {"Origin": f"http://{HOST}:{port}"}
    if rows and rows[0][2].startswith("{"):
        headers["Content-Type"] = "application/json"
    path = workdir / f"{re.sub(r'[^a-z0-9]+', '-', name.lower())}.lua"
    path.write_text(lua_script(rows, method, headers))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", default=DEFAULT_URL, help="postgresql://… (a server)")
    parser.add_argument("--browsers", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--duration", type=float, default=8.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=2.0, help="discarded seconds first")
    parser.add_argument("--light-duration", type=float, default=5.0, help="1-connection seconds")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("bench.peer needs wrk: apt-get install -y wrk")
    better_auth.install()
    workdir = Path(tempfile.mkdtemp(prefix="bench-peer-"))
    print(f"load average at start: {load_average()}")
    print(f"peer: {better_auth.versions()}")
    base = args.database_url

    with fresh_databases(base, ["ours", "ours2", "peer", "lean"]) as dbs, ExitStack() as stack:
        sqlite_url = f"sqlite:///{workdir / 'ours.db'}"
        seeded = {key: seed(url, args.browsers) for key, url in
                  (("pg", dbs["ours"]), ("pg2", dbs["ours2"]), ("sqlite", sqlite_url))}  # fmt: skip
        print(f"seeded {args.browsers} sessions of ours in each of 3 stores", flush=True)
        ours_pg, ours_pg_port = start_ours(stack, "ours-pg", dbs["ours"], workdir)
        ours_w2, ours_w2_port = start_ours(stack, "ours-pg-w2", dbs["ours2"], workdir, 2)
        ours_lite, ours_lite_port = start_ours(stack, "ours-sqlite", sqlite_url, workdir)
        peer_pg, peer_pg_port, peer_pg_browsers = start_peer(
            stack, "better-auth-pg", dbs["peer"], workdir, args.browsers
        )
        peer_lite, peer_lite_port, peer_lite_browsers = start_peer(
            stack, "better-auth-sqlite", str(workdir / "peer.db"), workdir, args.browsers
        )
        for port, sessions in ((ours_pg_port, seeded["pg"]), (ours_w2_port, seeded["pg2"]),
                               (ours_lite_port, seeded["sqlite"])):  # fmt: skip
            switch_body = check_our_switch(port, sessions[0])
        print("our switch checked by hand on each store (the answer names the new sign-in)")
        first = seeded["pg"][0]
        reads = {}
        for path in ("/session", "/session/token"):
            status, reads[path] = request(ours_pg_port, "GET", path, first.token)
            if status != 200:
                raise SystemExit(f"GET {path} answered {status}")
        bodies = {}
        for key, data in (("switch", switch_body), ("session", reads["/session"]),
                          ("token", reads["/session/token"])):  # fmt: skip
            bodies[key] = workdir / f"{key}.json"
            bodies[key].write_bytes(data)
        noop_port = free_port()
        noop = Server("noop", [
            sys.executable, "-m", "bench.noop_app", "--host", HOST, "--port", str(noop_port),
        ], {**os.environ, "BENCH_NOOP_BODY_FILE": str(bodies["switch"]),
            "BENCH_NOOP_SESSION_FILE": str(bodies["session"]),
            "BENCH_NOOP_TOKEN_FILE": str(bodies["token"])}, workdir / "noop.log")  # fmt: skip
        stack.callback(noop.stop)
        noop.wait_ready(noop_port, "/session")
        lean_port = free_port()
        lean = Server("lean", [
            sys.executable, "-m", "bench.lean_switch", "--host", HOST, "--port", str(lean_port),
        ], {**os.environ, "BENCH_NOOP_BODY_FILE": str(bodies["switch"]),
            "BENCH_LEAN_DATABASE_URL": dbs["lean"]}, workdir / "lean.log")  # fmt: skip
        stack.callback(lean.stop)
        lean.wait_ready(lean_port, "/docs")

        def ours(name: str, server: Server, port: int, key: str, path: str | None = None,
                 database: str | None = None) -> Target:  # fmt: skip
            rows = our_rows(seeded[key], path)
            method = "GET" if path else "POST"
            return Target(name, server, port, write_script(workdir, name, rows, method, port),
                          database)  # fmt: skip

        def peer(name: str, server: Server, port: int, browsers: list[better_auth.Browser],
                 database: str | None = None) -> Target:  # fmt: skip
            rows = better_auth.wrk_rows(browsers)
            return Target(name, server, port, write_script(workdir, name, rows, "POST", port),
                          database)  # fmt: skip

        pg_db = database_of(dbs["ours"])
        targets = {
            "ours-pg": ours("ours switch, PostgreSQL", ours_pg, ours_pg_port, "pg", None, pg_db),
            "peer-pg": peer("better-auth set-active, PostgreSQL", peer_pg, peer_pg_port,
                            peer_pg_browsers, database_of(dbs["peer"])),
            "ours-sqlite": ours("ours switch, SQLite", ours_lite, ours_lite_port, "sqlite"),
            "peer-sqlite": peer("better-auth set-active, SQLite", peer_lite, peer_lite_port,
                                peer_lite_browsers),
            "noop": ours("no-op FastAPI (switch path)", noop, noop_port, "pg"),
            "lean": ours("lean sketch: 1 durable INSERT, async", lean, lean_port, "pg", None,
                         database_of(dbs["lean"])),
            "ours-pg-w2": ours("ours switch, PostgreSQL, 2 workers", ours_w2, ours_w2_port,
                               "pg2", None, database_of(dbs["ours2"])),
            "ours-get": ours("ours GET /session, PostgreSQL", ours_pg, ours_pg_port, "pg",
                             "/session", pg_db),
            "noop-get": ours("no-op GET /session", noop, noop_port, "pg", "/session"),
            "ours-token": ours("ours GET /session/token, PostgreSQL", ours_pg, ours_pg_port,
                               "pg", "/session/token", pg_db),
            "noop-token": ours("no-op GET /session/token", noop, noop_port, "pg",
                               "/session/token"),
            "ours-get-sqlite": ours("ours GET /session, SQLite", ours_lite, ours_lite_port,
                                    "sqlite", "/session"),
            "ours-token-sqlite": ours("ours GET /session/token, SQLite", ours_lite,
                                      ours_lite_port, "sqlite", "/session/token"),
        }  # fmt: skip
        light = {
            key: Target(f"{targets[key].name}, 1 connection", targets[key].server,
                        targets[key].port, targets[key].script, targets[key].database)
            for key in ("ours-pg", "peer-pg", "noop")
        }  # fmt: skip
        ours_w2.stop()
        w2_tracebacks = ours_w2.count("Traceback")
        started = time.time()
        # One connection for the whole run: the shared server may have none to spare later.
        monitor = stack.enter_context(psycopg.connect(base, autocommit=True))
        for round_ in range(args.rounds):
            print(f"round {round_ + 1}/{args.rounds}: load average {load_average()}", flush=True)
            for key, target in targets.items():
                if key == "ours-pg-w2":
                    # Up only while measured: its processes' pools would otherwise hold
                    # connections the shared server's other users need.
                    target.server, _ = start_ours(
                        stack, f"ours-pg-w2-{round_}", dbs["ours2"], workdir, 2, target.port
                    )
                run_wrk(target.port, target.script, args.threads, args.connections, args.warmup)
                target.run(monitor, args.connections, args.threads, args.duration)
                if key == "ours-pg-w2":
                    w2_tracebacks += target.server.count("Traceback")
                    target.server.stop()
            for target in light.values():
                target.run(monitor, 1, 1, args.light_duration)
        errors = {
            t.server.name: t.server.count("Traceback")
            for k, t in targets.items()
            if k != "ours-pg-w2"
        }
        errors["ours-pg-w2"] = w2_tracebacks

    print()
    print(
        f"{args.rounds} interleaved rounds, {time.time() - started:.0f}s; wrk {args.threads} "
        f"threads / {args.connections} connections, {args.duration:g}s measured after "
        f"{args.warmup:g}s warm-up; {args.browsers} browsers with 2 accounts each"
    )
    print(HEADER)
    s = {
        key: t.summary()
        for key, t in {**targets, **{f"{k}-1": t for k, t in light.items()}}.items()
    }
    for summary in s.values():
        print(summary.line())
    print(f"tracebacks in server logs: {errors}")
    print()
    checks = [
        ("ours PG / better-auth PG", s["ours-pg"].rate / s["peer-pg"].rate, ">=", 2.0),
        ("ours SQLite / better-auth SQLite", s["ours-sqlite"].rate / s["peer-sqlite"].rate,
         ">=", 1.5),
        ("ours PG / no-op", s["ours-pg"].rate / s["noop"].rate, ">=", 0.5),
        ("1-connection p50 ms, PG", s["ours-pg-1"].p50, "<=", 4.0),
        ("1-connection p99 ms, PG", s["ours-pg-1"].p99, "<=", 10.0),
        ("32-connection p99/p50, PG", s["ours-pg"].p99 / s["ours-pg"].p50, "<=", 3.0),
        ("server CPU ms per switch, PG", s["ours-pg"].server_ms, "<=", 2.0),
        ("GET /session / no-op", s["ours-get"].rate / s["noop-get"].rate, ">=", 0.7),
        ("GET /session/token / no-op", s["ours-token"].rate / s["noop-token"].rate, ">=", 0.7),
        ("GET /session / no-op, SQLite", s["ours-get-sqlite"].rate / s["noop-get"].rate, ">=",
         0.7),
        ("GET /session/token / no-op, SQLite",
         s["ours-token-sqlite"].rate / s["noop-token"].rate, ">=", 0.7),
        ("--workers 2 / 1 worker, PG", s["ours-pg-w2"].rate / s["ours-pg"].rate, ">=", 1.6),
        ("(floor) lean sketch / better-auth PG", s["lean"].rate / s["peer-pg"].rate, ">=", 2.0),
        ("(floor) lean sketch / no-op", s["lean"].rate / s["noop"].rate, ">=", 0.5),
        ("errors, all our targets", float(sum(v.errors for k, v in s.items() if "peer" not in k)),
         "<=", 0.0),
    ]  # fmt: skip
    for label, value, op, bound in checks:
        ok = value >= bound if op == ">=" else value <= bound
        print(f"{label:36}{value:8.2f}   (target {op} {bound:g}: {verdict(ok)})")
    print(f"load average at end: {load_average()}")
    print(f"server logs: {workdir}")


if __name__ == "__main__":
    main()
