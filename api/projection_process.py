"""The projection worker of ``serve`` in a process of its own, out of the request path.

In the serving process the worker competes with requests for one GIL (a profile under load
put 12-14 % of the server's samples in it). ``serve`` therefore starts
``session-ledger projections run`` beside uvicorn and tells its workers not to run one. The
child takes the same lease a worker thread would (so a second ``serve`` on the same store
still runs one worker per store), is restarted if it exits, and dies with its parent (Linux
``PR_SET_PDEATHSIG``), so a killed ``serve`` leaves nothing behind. Reads stay
read-your-writes without it: a read whose projection is behind catches it up first.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator

from api.cli_common import die_with_parent

logger = logging.getLogger("session_ledger.projections")

RESTART_DELAY_SECONDS = 1.0


class ProjectionProcess:
    """Keeps one ``projections run`` child alive until stopped."""

    def __init__(self) -> None:
        self.command = [sys.executable, "-m", "api.cli", "projections", "run"]
        self._env = dict(os.environ)  # as at start, whatever serve changes for its workers
        self._stopping = threading.Event()
        self._process: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._supervise, name="projection-process")

    @property
    def pid(self) -> int | None:
        """The running child's pid, if any."""
        with self._lock:
            return self._process.pid if self._process else None

    def start(self) -> None:
        """Start the child and the thread that restarts it."""
        self._spawn()
        self._thread.daemon = True
        self._thread.start()

    def _spawn(self) -> None:
        with self._lock:
            if not self._stopping.is_set():
                self._process = subprocess.Popen(  # noqa: S603 - our own command line
                    self.command,
                    env=self._env,
                    preexec_fn=die_with_parent,
                )

    def _supervise(self) -> None:
        while not self._stopping.is_set():
            with self._lock:
                process = self._process
            if process is None:
                return
            code = process.wait()
            if self._stopping.wait(RESTART_DELAY_SECONDS):
                return
            logger.warning("projection worker process exited (%s); starting it again", code)
            self._spawn()

    def stop(self) -> None:
        """Stop the child (SIGTERM, then SIGKILL after 10 s) and stop restarting it."""
        self._stopping.set()
        with self._lock:
            process = self._process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextlib.contextmanager
def projection_process() -> Iterator[ProjectionProcess]:
    """A running projection worker process for the duration of the block."""
    child = ProjectionProcess()
    child.start()
    try:
        yield child
    finally:
        child.stop()
