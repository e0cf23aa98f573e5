"""Real servers and a real browser for tests: uvicorn on a port of 127.0.0.1, Debian's Chromium."""

from __future__ import annotations

import importlib.util
import itertools
import os
import shutil
import socket
import subprocess
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.types import ASGIApp

from tests.conftest import IN_CI

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def require_chromium() -> None:
    """Skip loudly, or under CI fail, without Debian's Chromium or Python's Playwright."""
    problem = ""
    if not os.access(CHROMIUM, os.X_OK):
        problem = f"{CHROMIUM} is missing (apt-get install chromium)"
    elif importlib.util.find_spec("playwright") is None:
        problem = "the playwright package is missing (pip install 'playwright>=1.40')"
    if not problem:
        return
    if IN_CI:
        pytest.fail(f"CI=true and {problem}")
    warnings.warn(f"SKIPPING the browser test: {problem}", stacklevel=2)
    pytest.skip(f"SKIPPED LOUDLY: {problem}")


# The servers the tests start listen below the kernel's ephemeral range (32768-60999), where
# no outgoing connection is given a local port, and each test process (pytest-xdist's gw0,
# gw1, ...) has a range of its own: a port found free stays free until its server binds it.
# (A port the kernel picks, bind to 0, can meanwhile become some connection's local port.)
# Below the private clusters' ports (tests/outage: 26500 up, tests/cluster: 27000 up).
PORTS_PER_PROCESS = 1300
PROCESS_SLOTS = 5  # 20000-26499: one test process, or up to four xdist workers


def _process_slot() -> int:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")  # "gw0", "gw1", ...; unset: one process
    return int(worker[2:]) + 1 if worker.startswith("gw") else 0


_FIRST_PORT = 20000 + _process_slot() * PORTS_PER_PROCESS
_next_ports = itertools.cycle(range(_FIRST_PORT, _FIRST_PORT + PORTS_PER_PROCESS))


def free_port() -> int:
    """A port of 127.0.0.1 that nothing listens on now, from this test process's range (the
    next free one after the last given, so a port just closed is not reused at once)."""
    if _process_slot() >= PROCESS_SLOTS:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])
    for _ in range(PORTS_PER_PROCESS):
        port = next(_next_ports)
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    pytest.fail(f"no free port in this test process's range of {PORTS_PER_PROCESS}")


@contextmanager
def serving(app: ASGIApp, port: int | None = None, **config: Any) -> Iterator[str]:
    """The app on ``port`` (a free one if None) of 127.0.0.1, by uvicorn in a thread
    (``config``: more ``uvicorn.Config`` options); its base URL."""
    port = port or free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", **config)
    )
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def wait_until_answering(
    base: str,
    process: subprocess.Popen[Any],
    seconds: float = 60,
    output: Callable[[], str] = lambda: "",
) -> None:
    """Wait for a ``session-ledger serve`` started as ``process`` to answer at ``base``; fail,
    showing the end of ``output()``, if it exits or ``seconds`` pass. A server still running
    then is killed first, so reading its output cannot block on a pipe it keeps open."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            httpx.get(f"{base}/openapi.json", timeout=5)
            return
        except httpx.TransportError:
            if process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.1)
                continue
        if process.poll() is None:
            process.kill()
            process.wait()
        pytest.fail(f"the server did not start: {output()[-2000:]}")


SESSION_LEDGER = shutil.which("session-ledger") or ""


@contextmanager
def served_process(
    url: str, *args: str, output: list[str] | None = None, quiet: bool = False
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """``session-ledger serve --demo ARGS`` on ``url`` and a free port, insecure cookies
    (http): the process and its base URL. Its output goes to a pipe, read when it has
    stopped (and added to ``output`` if given), or nowhere if ``quiet``."""
    port = free_port()
    env = {**os.environ, "SESSION_LEDGER_DATABASE_URL": url,
           "SESSION_LEDGER_COOKIE_SECURE": "false"}  # fmt: skip
    sink = subprocess.DEVNULL if quiet else subprocess.PIPE
    process = subprocess.Popen(
        [SESSION_LEDGER, "serve", "--port", str(port), "--demo", *args],
        env=env,
        stdout=sink,
        stderr=subprocess.DEVNULL if quiet else subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_answering(
            base, process, output=lambda: process.stdout.read() if process.stdout else ""
        )
        yield process, base
    finally:
        if process.poll() is None:
            process.terminate()
        out, _ = process.communicate(timeout=20)
        if output is not None and out:
            output.extend(out.splitlines())


@contextmanager
def served_cli(url: str, *args: str, output: list[str] | None = None) -> Iterator[str]:
    """:func:`served_process`, for tests that need only the base URL."""
    with served_process(url, *args, output=output) as (_, base):
        yield base
