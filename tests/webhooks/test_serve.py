"""``session-ledger serve`` delivers webhooks: from a child process (default) or a thread.

Given an endpoint and ``serve`` on a real port, a sign-in made over HTTP reaches the receiver
signed; with ``--workers 2`` too (one delivery worker for the store). Stopping ``serve``
stops its delivery process.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_cli import EXE
from tests.helpers import ALICE, BOB
from tests.serving import free_port, wait_until_answering
from tests.webhooks.receiver import Receiver, running, wait_for
from tests.webhooks.support import WEBHOOK_KEY, webhook_stack

pytestmark = [
    pytest.mark.slow,  # served processes
    pytest.mark.skipif(not EXE, reason="session-ledger is not installed"),
]


@contextmanager
def serving(
    url: str, mode: str, workers: int, log: Path
) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    port = free_port()
    env = {
        **os.environ,
        "SESSION_LEDGER_DATABASE_URL": url,
        "SESSION_LEDGER_COOKIE_SECURE": "false",
        "SESSION_LEDGER_WEBHOOK_KEY": WEBHOOK_KEY,
        "SESSION_LEDGER_WEBHOOK_ALLOW_PRIVATE_ADDRESSES": "true",
        "SESSION_LEDGER_WEBHOOK_POLL_SECONDS": "0.05",
        "SESSION_LEDGER_WEBHOOK_WORKER": mode,
        "SESSION_LEDGER_POSTGRES_POOL_SIZE": "3",  # the test server is shared: few connections
    }
    with log.open("w") as output:
        process = subprocess.Popen(
            [EXE, "serve", "--port", str(port), "--demo", "--workers", str(workers)],
            env=env, stdout=output, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_answering(base, process, 90, log.read_text)
        yield base, process
    finally:
        process.terminate()
        process.wait(timeout=20)


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as listing:
            return [int(p) for p in listing.read().split()]
    except OSError:
        return []


@pytest.mark.parametrize(("mode", "workers"), [("process", 1), ("process", 2), ("thread", 1)])
def test_serve_delivers_webhooks(
    durable_database_url: str, mode: str, workers: int, tmp_path: Path
) -> None:
    url = durable_database_url
    log = tmp_path / "serve.log"
    with running(Receiver()) as receiver:
        with webhook_stack(url) as stack:
            receiver.secrets.append(
                stack.services.webhooks.create_endpoint(receiver.url, ["session.signin.added"])[1]
            )
        with (
            serving(url, mode, workers, log) as (base, process),
            httpx.Client(base_url=base, timeout=30) as client,
        ):
            for email, password, _ in (ALICE, BOB):
                answer = client.post("/auth/signin", data={
                    "email": email, "password": password, "strategy": "plain_email"})  # fmt: skip
                assert answer.status_code == 200, answer.text
            wait_for(lambda: len(receiver.accepted_ids()) == 2, 90, f"both sign-ins ({log})")
            users = sorted(r.json["data"]["user_id"] for r in receiver.requests)
            assert users == sorted([ALICE[2], BOB[2]])
            assert all(r.verified_by == [0] for r in receiver.requests)
            health = client.get("/health").json()["data"]["webhooks"]
            assert health["configured"] is True
            children = _children(process.pid)
        if mode == "process" and workers == 1:
            assert children, "serve started no delivery process"
            wait_for(lambda: not any(os.path.exists(f"/proc/{c}") and _alive(c) for c in children),
                     30, "the delivery process to end with serve")  # fmt: skip


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
