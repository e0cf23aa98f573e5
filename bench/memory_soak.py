"""Memory under a long write load: RSS of ``session-ledger serve`` per thousand switches.

    python -m bench.memory_soak [--store sqlite|postgres] [--switches 30000] [--sessions 64]

Seeds ``--sessions`` sessions (Alice and Bob signed in, a cookie token each), starts
``session-ledger serve`` on them (real uvicorn, one process, the projection worker on), and
switches sign-ins from ``--connections`` keep-alive HTTP clients at once, each round-robin
over its share of the sessions. After
every thousand switches it reads the server's resident set size (VmRSS). Prints the RSS
after each thousand, and the growth per switch over the second half of the run (the first
half lets caches, pools and the allocator settle): a flat service shows a few bytes per
switch at most; the issue measured about 180 bytes per switch before.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx

from bench.common import fresh_store, load_average, seed_sessions
from infrastructure.container import build_services
from infrastructure.settings import Settings
from tests.serving import free_port

ROOT = Path(__file__).resolve().parent.parent


def rss_kib(pid: int) -> int:
    """Resident set size of a process, KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


@contextmanager
def served(url: str) -> Iterator[tuple[str, int]]:
    """``session-ledger serve --demo`` on ``url``; its base URL and pid."""
    port = free_port()
    env = {**os.environ, "SESSION_LEDGER_DATABASE_URL": url,
           "SESSION_LEDGER_COOKIE_SECURE": "false", "PYTHONPATH": str(ROOT)}  # fmt: skip
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(  # noqa: S603 - our own CLI, arguments of our own
            [sys.executable, "-m", "api.cli", "serve", "--port", str(port), "--demo"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    httpx.get(f"{base}/openapi.json", timeout=1)
                    break
                except httpx.TransportError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        raise SystemExit("the server did not start") from None
                    time.sleep(0.2)
            yield base, process.pid
        finally:
            process.terminate()
            process.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--store", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--switches", type=int, default=30_000)
    parser.add_argument("--sessions", type=int, default=64)
    parser.add_argument("--connections", type=int, default=4, help="concurrent clients")
    args = parser.parse_args()
    with fresh_store(args.store) as url:
        services = build_services(Settings(database_url=url))
        try:
            from api.cli_common import demo_directory_text
            from infrastructure.directory_file import parse_directory

            services.directory_loader.load(parse_directory(demo_directory_text()))
            seeded = seed_sessions(services, args.sessions)
        finally:
            services.close()
        with served(url) as (base, pid):
            samples = [rss_kib(pid)]
            done = [0]
            lock = threading.Lock()
            started = time.monotonic()

            def switcher(index: int) -> None:
                mine = seeded[index :: args.connections]
                with httpx.Client(base_url=base, timeout=60) as http:
                    n = 0
                    while True:
                        with lock:
                            if done[0] >= args.switches:
                                return
                            done[0] += 1
                            if done[0] % 1000 == 0:
                                samples.append(rss_kib(pid))
                        one = mine[n % len(mine)]
                        flip = (n // len(mine)) % 2 == 0
                        target = one.alice_sign_in if flip else one.bob_sign_in
                        n += 1
                        response = http.post(
                            "/session/switch-sign-in",
                            params={"sign_in_id": str(target)},
                            headers={"Cookie": f"session_id={one.token}"},
                        )
                        if response.status_code != 200:
                            raise SystemExit(f"a switch answered {response.status_code}")

            with ThreadPoolExecutor(args.connections) as pool:
                for future in [pool.submit(switcher, i) for i in range(args.connections)]:
                    future.result()
            elapsed = time.monotonic() - started
    print(f"store {args.store}; {args.switches} switches over HTTP from {args.connections} "
          f"connections in {elapsed:.0f} s; "
          f"load {load_average()}")  # fmt: skip
    print("RSS KiB after each 1000 switches: " + " ".join(str(s) for s in samples))
    half = len(samples) // 2
    if len(samples) - half >= 2:
        grown = (samples[-1] - samples[half]) * 1024
        per_switch = grown / ((len(samples) - 1 - half) * 1000)
        print(f"second half: {grown / 1024:+.0f} KiB, {per_switch:+.1f} bytes per switch, "
              f"{per_switch * 1000 / 1024:+.1f} KiB per thousand switches")  # fmt: skip


if __name__ == "__main__":
    main()
