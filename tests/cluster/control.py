"""Driving ``deploy/cluster`` from tests: bring it up, ask Patroni who is primary, break it.

Everything goes through the same script and REST APIs an operator uses: ``deploy/cluster``
to start and stop processes, Patroni's ``/primary`` and ``/patroni`` endpoints to see roles,
and plain signals for the faults (a SIGKILLed postmaster, a stopped etcd, a SIGKILLed API
node).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.conftest import IN_CI
from tests.projections.support import console_script

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "deploy" / "cluster"
BASE_PORT = 27000  # below Linux's ephemeral range (32768-60999): no outgoing socket holds it
DB_NODES = (1, 2, 3)
API_NODES = (1, 2)
TOOLS = ("etcd", "etcdctl", "patroni", "patronictl", "psql", "setpriv")


def require_cluster_tools() -> None:
    """Skip (loudly) or, under CI, fail when etcd, Patroni or root are missing."""
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    reason = ""
    if missing:
        reason = f"missing {', '.join(missing)} (apt-get install patroni etcd-server etcd-client)"
    elif os.geteuid() != 0:
        reason = "the cluster test runs PostgreSQL as the postgres user, so it needs root"
    if reason:
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)


@dataclass
class Cluster:
    """A cluster made by ``deploy/cluster`` in a directory of its own."""

    directory: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="sl-cluster-")))

    def run(self, *args: str, timeout: float = 900) -> str:
        """``deploy/cluster ARGS``; its output (raises with the output if it fails)."""
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "SESSION_LEDGER_CLUSTER_DIR": str(self.directory),
            "SESSION_LEDGER_CLUSTER_BASE_PORT": str(BASE_PORT),
            "SESSION_LEDGER_BIN": console_script(),
            # The traffic comes from one address: per-address limits would answer 429.
            "SESSION_LEDGER_RATE_LIMITS": "false",
            # Bootstrapping took over 120 s once, while the other test process kept both
            # cores and the disk busy (15 s alone): patience at set-up, none in the tests.
            "SESSION_LEDGER_CLUSTER_WAIT_SECONDS": "400",
        }
        try:
            done = subprocess.run(
                [str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=timeout
            )
        except subprocess.TimeoutExpired:
            pytest.fail(f"deploy/cluster {' '.join(args)} took over {timeout}s\n{self.logs()}")
        assert done.returncode == 0, (
            f"deploy/cluster {' '.join(args)}:\n{done.stderr}\n{self.logs()}"
        )
        return done.stdout

    def logs(self, lines: int = 15) -> str:
        """The last lines of every process's log, to say why the cluster misbehaved."""
        tails = []
        for log in sorted((self.directory / "logs").glob("*.log")):
            text = log.read_text(errors="replace").splitlines()
            # The start says what a node was doing (bootstrap, initdb); the end, how it ended.
            shown = text if len(text) <= 2 * lines else [*text[:lines], "...", *text[-lines:]]
            tails.append(f"== {log.name}\n" + "\n".join(shown))
        return "\n".join(tails)

    def settings(self) -> dict[str, str]:
        """The API nodes' ``SESSION_LEDGER_*`` settings."""
        pairs = (line.split("=", 1) for line in self.run("env").splitlines() if "=" in line)
        return dict(pairs)

    @staticmethod
    def api_url(node: int) -> str:
        """The base URL of API node ``node``."""
        return f"http://127.0.0.1:{BASE_PORT + 30 + node}"

    @staticmethod
    def rest_url(node: int) -> str:
        """Patroni's REST API on database node ``node``."""
        return f"http://127.0.0.1:{BASE_PORT + 20 + node}"

    def primary(self) -> int | None:
        """The database node whose Patroni says it runs the primary, if one does."""
        for node in DB_NODES:
            try:
                if httpx.get(f"{self.rest_url(node)}/primary", timeout=1).status_code == 200:
                    return node
            except httpx.HTTPError:
                continue
        return None

    def member(self, node: int) -> dict[str, object]:
        """Patroni's view of one node (role, state, timeline...), or {} when it does not answer."""
        try:
            response = httpx.get(f"{self.rest_url(node)}/patroni", timeout=1)
            answer: dict[str, object] = response.json()
        except (httpx.HTTPError, ValueError):
            return {}
        return answer

    def wait_until(self, what: str, check: object, timeout: float = 120) -> None:
        """Poll ``check()`` until it is true; fail naming ``what`` after ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():  # type: ignore[operator]
                return
            time.sleep(0.2)
        pytest.fail(f"timed out after {timeout}s waiting for {what}\n{self.run('status')}")

    def healthy(self) -> bool:
        """A primary, every other node a streaming replica, one of them synchronous."""
        primary = self.primary()
        if primary is None:
            return False
        states = [self.member(node) for node in DB_NODES if node != primary]
        streaming = all(s.get("role") == "replica" and s.get("state") == "running" for s in states)
        sync = any(
            httpx.get(f"{self.rest_url(n)}/sync", timeout=1).status_code == 200
            for n in DB_NODES
            if n != primary
        )
        return streaming and sync

    def postmaster_pid(self, node: int) -> int:
        """The pid of node ``node``'s postmaster, from its data directory."""
        text = (self.directory / f"db{node}" / "data" / "postmaster.pid").read_text()
        return int(text.split()[0])

    def kill_postmaster(self, node: int) -> None:
        """SIGKILL the postmaster of ``node`` (Patroni on that node stays up)."""
        os.kill(self.postmaster_pid(node), signal.SIGKILL)

    def pid(self, name: str) -> int:
        """The pid ``deploy/cluster`` recorded for ``name`` (etcd, db1, api2...)."""
        return int((self.directory / "run" / f"{name}.pid").read_text())

    def kill(self, name: str) -> None:
        """SIGKILL a process that ``deploy/cluster`` started."""
        os.kill(self.pid(name), signal.SIGKILL)

    def close(self) -> None:
        """Stop everything and remove the directory."""
        try:
            self.run("down", "--purge")
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)
