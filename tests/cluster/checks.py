"""What must hold after every fault: nothing acknowledged lost, the chain intact, views exact."""

from __future__ import annotations

import os
import subprocess
import time
import uuid

from infrastructure.container import Services
from tests.cluster.control import ROOT
from tests.cluster.traffic import Ledger
from tests.projections.support import all_rows, console_script, differences, rebuild_all

KINDS = {
    "SignInCompleted",
    "ActiveSignInSwitched",
    "MembershipActivated",
    "SignedOut",
    "SignedOutOfAll",
}


def history_of(services: Services, session_id: int) -> list[tuple[str, int | None]]:
    """The session's events of the kinds the browsers write, in order, with their sign-in.

    Also checks the versions run 1, 2, 3... without a gap or a repeat.
    """
    app = services.sessions
    stored = app.recorder.select_events(uuid.UUID(int=session_id))
    versions = [event.originator_version for event in stored]
    assert versions == list(range(1, len(versions) + 1)), f"session {session_id}: {versions}"
    found: list[tuple[str, int | None]] = []
    for item in stored:
        event = app.mapper.to_domain_event(item)
        kind = type(event).__name__
        if kind in KINDS:
            found.append((kind, getattr(event, "sign_in_id", None)))
    return found


def assert_acknowledged_writes_kept(services: Services, ledger: Ledger) -> int:
    """Every 2xx-answered write is in its session's history, in order, exactly once."""
    checked = 0
    for session_id, acknowledged in ledger.acknowledged.items():
        history = history_of(services, session_id)
        completed = [sign_in for kind, sign_in in history if kind == "SignInCompleted"]
        assert len(completed) == len(set(completed)), f"session {session_id}: {history}"
        remaining = iter(history)
        for write in acknowledged:
            # A subsequence: each acknowledged write matches a later event than the last.
            assert any(event == write for event in remaining), (
                f"session {session_id}: acknowledged {write} missing or out of order; "
                f"acknowledged {acknowledged}, history {history}"
            )
            checked += 1
    return checked


def assert_audit_verifies(settings: dict[str, str]) -> str:
    """``session-ledger audit verify`` on the cluster exits 0; its output."""
    done = subprocess.run(
        [console_script(), "audit", "verify"],
        env={**os.environ, **settings, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"audit verify failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout.strip()


def assert_views_equal_a_rebuild(services: Services, timeout: float = 120) -> None:
    """Once the API nodes' worker has caught up, the views are what a fresh rebuild makes."""
    deadline = time.monotonic() + timeout
    while any(projector.status().lag for projector in services.projectors):
        assert time.monotonic() < deadline, "the projections did not catch up"
        time.sleep(0.2)
    live = all_rows(services)
    rebuild_all(services)
    rebuilt = all_rows(services)
    assert rebuilt == live, differences(live, rebuilt)
