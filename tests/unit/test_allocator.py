"""serve caps glibc's malloc arenas (memory stays flat under writes), unless told otherwise."""

from __future__ import annotations

import os
import subprocess
import sys

PROBE = (
    "import os; from infrastructure.allocator import limit_malloc_arenas; "
    "print(limit_malloc_arenas(), os.environ.get('MALLOC_ARENA_MAX'))"
)


def _probe(**environment: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        env={**env, **environment},
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def test_the_cap_is_taken_by_glibc_and_handed_to_children() -> None:
    assert _probe() == "True 2"


def test_an_operators_own_setting_wins() -> None:
    assert _probe(MALLOC_ARENA_MAX="4") == "False 4"
