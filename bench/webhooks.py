"""Webhook delivery beside the switch benchmark: does it keep up, and what does it cost?

    python -m bench.webhooks [--sessions 256] [--duration 15] [--modes off,serve,thread]

Needs wrk and PostgreSQL, like bench/switch.py (whose seeding, wrk script, servers and
measurements it reuses). In one fresh schema, the same wrk switch load runs against
``session-ledger serve`` in each mode:

- ``off``: no webhook key: no webhooks (the baseline);
- ``serve``: one endpoint subscribed to every event type, delivered by ``serve`` as it does
  by default (its delivery worker in a child process);
- ``thread``: the same with ``SESSION_LEDGER_WEBHOOK_WORKER=thread`` (the worker in a thread
  of the API process).

The receiver (bench/webhook_receiver.py, its own process on this machine) answers 200 at once.
While wrk runs, /health is sampled every half second: the follower's lag (events not yet made
into messages), pending deliveries and the age of the oldest. Printed per mode: switches/s,
latency, events recorded/s, deliveries/s, the worst lag seen, the lag when the load stopped
and how long delivery took to drain after it; then each mode's switch rate against ``off``
(target: at least 0.90, i.e. delivery lowers the switch throughput by at most 10 %); ``off``
runs first and last by default and the baseline is their mean, so warming up and drift on a
shared machine weigh on both sides.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from bench.common import DEFAULT_URL, fresh_schema, load_average, seed_sessions, verdict
from bench.switch import HOST, Server, WrkResult, events_in, free_port, run_wrk, switch_script
from infrastructure.container import build_services
from infrastructure.settings import Settings

KEY = "bench-webhook-key-outside-the-store"


def get_json(port: int, path: str) -> dict[str, object]:
    with urllib.request.urlopen(f"http://{HOST}:{port}{path}", timeout=10) as answer:
        data: dict[str, object] = json.loads(answer.read())
        return data


def webhook_state(port: int) -> tuple[int, int, float]:
    """(follower lag in events, pending deliveries, age of the oldest pending) from /health."""
    hooks: dict[str, object] = get_json(port, "/health")["data"]["webhooks"]  # type: ignore[index]
    endpoints: list[dict[str, object]] = hooks["endpoints"]  # type: ignore[assignment]
    pending = sum(int(str(e["pending"])) for e in endpoints)
    oldest = max((float(str(e["oldest_pending_seconds"])) for e in endpoints), default=0.0)
    return int(str(hooks["lag"])), pending, oldest


@dataclass
class ModeResult:
    """What one mode measured."""

    mode: str
    wrk: WrkResult
    events_per_s: float
    delivered_per_s: float
    worst: tuple[int, int, float]
    at_end: tuple[int, int, float]
    drain_seconds: float | None


class Sampler(threading.Thread):
    """Samples the webhook lag from /health until stopped; keeps the worst seen."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.stop = threading.Event()
        self.worst: tuple[int, int, float] = (0, 0, 0.0)

    def run(self) -> None:
        while not self.stop.wait(0.5):
            try:
                lag, pending, oldest = webhook_state(self.port)
            except OSError:
                continue
            w = self.worst
            self.worst = (max(w[0], lag), max(w[1], pending), max(w[2], oldest))


def run_mode(
    mode: str, args: argparse.Namespace, url: str, schema: str, script: Path, work: Path,
    receiver_port: int,
) -> ModeResult:  # fmt: skip
    serve = shutil.which("session-ledger")
    command = [serve] if serve else [sys.executable, "-m", "api.cli"]
    env = {**os.environ, "SESSION_LEDGER_DATABASE_URL": url}
    env["SESSION_LEDGER_COOKIE_SECURE"] = "false"
    if mode != "off":
        env["SESSION_LEDGER_WEBHOOK_KEY"] = KEY
        env["SESSION_LEDGER_WEBHOOK_ALLOW_PRIVATE_ADDRESSES"] = "true"
    if mode == "thread":
        env["SESSION_LEDGER_WEBHOOK_WORKER"] = "thread"
    port = free_port()
    server = Server(f"serve ({mode})", [*command, "serve", "--host", HOST, "--port", str(port)],
                    env, work / f"serve-{mode}.log")  # fmt: skip
    try:
        server.wait_ready(port, "/health")
        run_wrk(port, script, args.threads, args.connections, args.warmup)
        before_events = events_in(url, schema)
        before_delivered = int(str(get_json(receiver_port, "/count")["unique"]))
        sampler = Sampler(port)
        if mode != "off":
            sampler.start()
        result = run_wrk(port, script, args.threads, args.connections, args.duration)
        sampler.stop.set()
        events = events_in(url, schema) - before_events
        at_end = webhook_state(port) if mode != "off" else (0, 0, 0.0)
        delivered = int(str(get_json(receiver_port, "/count")["unique"])) - before_delivered
        drain: float | None = 0.0
        if mode != "off":
            started = time.monotonic()
            while webhook_state(port)[:2] != (0, 0):
                if time.monotonic() - started > 120:
                    drain = None
                    break
                time.sleep(0.1)
            else:
                drain = time.monotonic() - started
        if sampler.is_alive():
            sampler.join()
    finally:
        server.stop()
    return ModeResult(
        mode, result, events / result.seconds, delivered / result.seconds, sampler.worst,
        at_end, drain,
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--sessions", type=int, default=256)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument(
        "--modes", default="off,serve,thread,off", help="in order; off runs are averaged"
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("bench.webhooks needs wrk: apt-get install -y wrk")
    modes = args.modes.split(",")
    work = Path(tempfile.mkdtemp(prefix="bench-webhooks-"))
    print(f"load average at start: {load_average()}")
    receiver_port = free_port()
    receiver = Server(
        "receiver",
        [sys.executable, "-m", "bench.webhook_receiver", "--port", str(receiver_port)],
        dict(os.environ),
        work / "receiver.log",
    )
    results: list[ModeResult] = []
    try:
        receiver.wait_ready(receiver_port, "/count")
        with fresh_schema(args.database_url) as url:
            schema = url.rsplit("schema=", 1)[1]
            settings = Settings(database_url=url, webhook_key=KEY,
                                webhook_allow_private_addresses=True)  # fmt: skip
            services = build_services(settings)
            try:
                seeded = seed_sessions(services, args.sessions)
            finally:
                services.close()
            script = work / "switch.lua"
            script.write_text(switch_script(seeded))
            for mode in modes:
                # Messages for what earlier modes recorded are made now, outside the measurement,
                # and each mode gets an endpoint of its own, so none starts with a backlog.
                services = build_services(settings)
                try:
                    hooks = services.webhooks
                    hooks.projector.catch_up()
                    for old in hooks.endpoints():
                        hooks.update_endpoint(old.id, enabled=False)
                    if mode != "off":
                        hooks.create_endpoint(f"http://{HOST}:{receiver_port}/hooks", None)
                finally:
                    services.close()
                results.append(run_mode(mode, args, url, schema, script, work, receiver_port))
    finally:
        receiver.stop()
    print()
    print(f"switch with webhook delivery: PostgreSQL, {args.sessions} sessions, wrk {args.threads} "
          f"threads / {args.connections} connections, {args.duration:g}s after {args.warmup:g}s "
          "warm-up, 1 uvicorn worker; one endpoint subscribed to every event type")  # fmt: skip
    print(f"{'mode':10}{'switch/s':>10}{'p50 ms':>8}{'p99 ms':>8}{'errors':>7}{'events/s':>10}"
          f"{'delivered/s':>13}{'worst lag (events, pending, s)':>32}{'lag at end':>16}"
          f"{'drain s':>9}")  # fmt: skip
    for r in results:
        worst = f"{r.worst[0]}, {r.worst[1]}, {r.worst[2]:.1f}"
        end = f"{r.at_end[0]}, {r.at_end[1]}, {r.at_end[2]:.1f}"
        drain = "-" if r.drain_seconds is None else f"{r.drain_seconds:.1f}"
        print(f"{r.mode:10}{r.wrk.rate:10,.0f}{r.wrk.p50_ms:8.1f}{r.wrk.p99_ms:8.1f}"
              f"{r.wrk.errors:7d}{r.events_per_s:10,.0f}{r.delivered_per_s:13,.0f}{worst:>32}"
              f"{end:>16}{drain:>9}")  # fmt: skip
    offs = [r.wrk.rate for r in results if r.mode == "off"]
    base = sum(offs) / len(offs) if offs else None
    if base is not None:
        print(f"baseline (mean of {len(offs)} off run(s)): {base:,.0f} switches/s")
    for r in results:
        if r.mode == "off" or base is None:
            continue
        ratio = r.wrk.rate / base
        keeps_up = r.delivered_per_s >= 0.9 * r.events_per_s and r.drain_seconds is not None
        print(f"{r.mode}: switch throughput {ratio:.2f} of off (target >= 0.90: "
              f"{verdict(ratio >= 0.90)}); delivery keeps up with the event rate: "
              f"{verdict(keeps_up)}")  # fmt: skip
    print(f"load average at end: {load_average()}")
    print(f"logs: {work}")


if __name__ == "__main__":
    main()
