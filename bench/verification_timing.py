"""Does /auth/prepare-verification take longer for an email that has an account?

Two attempts are opened over real HTTP (uvicorn in a thread): one for an account's email,
one for an email without one. Then ``--tries`` pairs of POST /auth/prepare-verification
are sent, each pair in random order (interleaved, so drift in the machine's load hits
both alike), and each request is timed at the client. Prints both medians, their
difference, and a two-sided permutation test of the difference of medians (labels
shuffled ``--permutations`` times). A p-value well above 0.05 means the timings do not
tell the two apart; the issue measured 18.9 ms against 14.3 ms, p < 0.001, before.

    python -m bench.verification_timing [--store sqlite|postgres] [--tries 100]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import httpx

from api.app import create_app
from api.cli_common import demo_directory_text
from bench.common import fresh_store, load_average
from infrastructure.container import build_services
from infrastructure.directory_file import parse_directory
from infrastructure.settings import Settings
from tests.serving import serving

KNOWN = "alice@example.com"
UNKNOWN = "nobody-here@example.com"


def open_attempt(http: httpx.Client, email: str) -> str:
    started = http.post("/auth/signin", data={"strategy": "email_otp", "email": email})
    started.raise_for_status()
    return str(started.json()["data"]["signin_attempts"][-1]["id"])


def median_gap(a: list[float], b: list[float]) -> float:
    return statistics.median(a) - statistics.median(b)


def permutation_p(a: list[float], b: list[float], permutations: int, rng: random.Random) -> float:
    observed = abs(median_gap(a, b))
    pooled = a + b
    extreme = 0
    for _ in range(permutations):
        rng.shuffle(pooled)
        if abs(median_gap(pooled[: len(a)], pooled[len(a) :])) >= observed:
            extreme += 1
    return (extreme + 1) / (permutations + 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--store", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--tries", type=int, default=100)
    parser.add_argument("--permutations", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with fresh_store(args.store) as url:
        settings = Settings(database_url=url, rate_limits=False, cookie_secure=False)
        services = build_services(settings)
        services.directory_loader.load(parse_directory(demo_directory_text()))
        try:
            with (
                serving(create_app(services=services)) as base,
                httpx.Client(base_url=base) as known,
                httpx.Client(base_url=base) as unknown,
            ):
                clients = {"known": (known, open_attempt(known, KNOWN)),
                           "unknown": (unknown, open_attempt(unknown, UNKNOWN))}  # fmt: skip
                timings: dict[str, list[float]] = {"known": [], "unknown": []}
                for _ in range(5):  # warm both paths up
                    for http, attempt in clients.values():
                        prepare(http, attempt)
                for _ in range(args.tries):
                    order = list(clients)
                    rng.shuffle(order)
                    for name in order:
                        http, attempt = clients[name]
                        started = time.perf_counter()
                        prepare(http, attempt)
                        timings[name].append((time.perf_counter() - started) * 1000)
        finally:
            services.close()
    known_ms, unknown_ms = timings["known"], timings["unknown"]
    p = permutation_p(known_ms, unknown_ms, args.permutations, rng)
    print(f"store {args.store}; {args.tries} interleaved tries each; load {load_average()}")
    print(f"existing account: median {statistics.median(known_ms):.2f} ms")
    print(f"no account:       median {statistics.median(unknown_ms):.2f} ms")
    print(f"difference of medians {median_gap(known_ms, unknown_ms):+.2f} ms; "
          f"permutation p = {p:.3f} ({args.permutations} permutations)")  # fmt: skip


def prepare(http: httpx.Client, attempt: str) -> None:
    response = http.post(
        "/auth/prepare-verification",
        params={"attempt_identifier": attempt, "strategy": "email_otp"},
    )
    response.raise_for_status()


if __name__ == "__main__":
    main()
