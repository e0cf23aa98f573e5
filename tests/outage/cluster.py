"""A private PostgreSQL cluster for tests that stop and restart the server.

Made with ``initdb`` in a temporary directory, run by ``pg_ctl`` on its own port, as the
``postgres`` OS user when the tests run as root (PostgreSQL refuses to run as root), and
removed afterwards. Never the machine's shared server.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

from tests.conftest import IN_CI

BIN = Path(os.environ.get("SESSION_LEDGER_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))

# Below the kernel's ephemeral range (32768-60999 by default), so no client socket of the
# suite's own connections can be holding the port when the server binds it; apart from the
# Patroni cluster's ports (27000 up).
PORTS = range(26500, 26540)


class PrivateCluster:
    """One initdb'd cluster: start, stop (fast: connections are cut), start again."""

    def __init__(self, directory: Path, port: int) -> None:
        self.directory = directory
        self.port = port
        self.data = directory / "data"
        self.url = f"postgresql://postgres@127.0.0.1:{port}/postgres"

    def _run(self, *args: str) -> None:
        command = [str(BIN / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def log(self) -> str:
        """The server's log so far (empty when it never wrote one)."""
        try:
            return (self.directory / "log").read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def init(self) -> None:
        """Create the cluster's files (trust authentication, loopback only)."""
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync")

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.directory} -F"
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-o",
            options,
            "-w",
            "-l",
            str(self.directory / "log"),
            "start",
        )

    def stop(self) -> None:
        """Stop the server at once, cutting every connection (``-m fast``)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def running(self) -> bool:
        """Whether the server's pid file is there (pg_ctl status)."""
        return (self.data / "postmaster.pid").exists()


def _problem() -> str:
    if not (BIN / "initdb").exists():
        return f"no initdb in {BIN}"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no postgres user to run the cluster"
    return ""


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _start_on_a_free_port(cluster: PrivateCluster) -> None:
    """Start on the first port of PORTS that binds; a port taken meanwhile means the next."""
    for port in PORTS:
        if not _free(port):
            continue
        cluster.port = port
        cluster.url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        try:
            cluster.start()
            return
        except subprocess.CalledProcessError as failed:
            log = cluster.log()
            if "could not bind" in log or "already in use" in log:
                continue
            raise AssertionError(f"the private cluster did not start:\n{log}") from failed
    pytest.fail(f"no free port for the private cluster in {PORTS}")


@contextmanager
def private_cluster() -> Iterator[PrivateCluster]:
    """A started private cluster on a free port; stopped and deleted afterwards."""
    problem = _problem()
    if problem:
        if IN_CI:
            pytest.fail(f"CI=true and {problem}")
        pytest.skip(f"SKIPPED LOUDLY: {problem}")
    directory = Path(tempfile.mkdtemp(prefix="session-ledger-pg-"))
    if os.geteuid() == 0:
        shutil.chown(directory, "postgres", "postgres")
    cluster = PrivateCluster(directory, PORTS[0])
    try:
        cluster.init()
        _start_on_a_free_port(cluster)
        yield cluster
    finally:
        if cluster.running():
            with suppress(subprocess.SubprocessError):
                cluster.stop()
        shutil.rmtree(directory, ignore_errors=True)
