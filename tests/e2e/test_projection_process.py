"""``serve`` runs the projection worker in a child process: it projects, comes back when
killed, and goes away with ``serve``."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_cli import EXE
from tests.serving import served_process

pytestmark = [
    pytest.mark.slow,  # served processes
    pytest.mark.skipif(not EXE, reason="session-ledger is not installed (pip install -e .)"),
]


def projection_children(parent: int) -> list[int]:
    """Live ``projections run`` processes whose parent is ``parent``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except (OSError, IndexError):
            continue
        if ppid == parent and b"projections" in command and b"run" in command:
            found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_for(condition: str, check: Callable[[], object], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting until {condition}")
        time.sleep(0.1)


@pytest.fixture
def serve(durable_database_url: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    with served_process(durable_database_url, quiet=True) as served:
        yield served


def caught_up(base: str) -> bool:
    report = httpx.get(f"{base}/health").json()["data"]["projections"]
    return all(p["lag"] == 0 and p["head"] > 0 for p in report)


def test_the_child_projects_comes_back_and_leaves_with_serve(
    serve: tuple[subprocess.Popen[str], str],
) -> None:
    process, base = serve
    # Given serve with its projection worker in a child process
    wait_for("a projections child runs", lambda: len(projection_children(process.pid)) == 1)
    first = projection_children(process.pid)[0]
    # with glibc's malloc arenas capped, as serve sets them for itself and its children
    # (infrastructure/allocator.py), unless the operator chose a number
    environment = Path(f"/proc/{first}/environ").read_bytes().split(b"\0")
    chosen = os.environ.get("MALLOC_ARENA_MAX", "2").encode()
    assert b"MALLOC_ARENA_MAX=" + chosen in environment

    # When a session starts (a write; nothing reads the session back)
    assert httpx.get(f"{base}/session").status_code == 200
    # Then the child projects it
    wait_for("the projections catch up", lambda: caught_up(base))

    # When the child is killed, it is started again, and projects the next write
    os.kill(first, signal.SIGKILL)
    wait_for(
        "a new child runs",
        lambda: [p for p in projection_children(process.pid) if p != first and alive(p)],
    )
    assert httpx.get(f"{base}/session").status_code == 200
    wait_for("the projections catch up again", lambda: caught_up(base))

    # When serve itself is killed outright, its child goes too
    child = projection_children(process.pid)[0]
    process.kill()
    process.wait()
    wait_for("the child exits with its parent", lambda: not alive(child))
