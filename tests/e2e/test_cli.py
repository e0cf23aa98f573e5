"""The installed ``session-ledger`` command, run as a user would: real processes, real HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import ALICE, BOB, DEMO_DIRECTORY
from tests.serving import SESSION_LEDGER, served_cli

EXE = SESSION_LEDGER
pytestmark = [
    pytest.mark.slow,  # served processes
    pytest.mark.skipif(not EXE, reason="session-ledger is not installed (pip install -e .)"),
]


def run(args: list[str], url: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SESSION_LEDGER_DATABASE_URL": url}
    return subprocess.run([EXE, *args], env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(params=[1, 2], ids=["one-worker", "two-workers"])
def server(durable_database_url: str, request: pytest.FixtureRequest) -> Iterator[str]:
    """``session-ledger serve --demo [--workers 2]`` on a free port, insecure cookies (http)."""
    workers = ["--workers", str(request.param)] if request.param > 1 else []
    with served_cli(durable_database_url, *workers) as base:
        yield base


def test_a_new_user_signs_in_two_demo_accounts_and_switches(server: str) -> None:
    # A new connection per request, so that with two workers both serve this browser.
    with httpx.Client(base_url=server, headers={"Connection": "close"}) as client:
        anonymous = client.get("/session").json()
        assert anonymous["data"]["signins"] == []
        for email, password, _ in (ALICE, BOB):
            response = client.post(
                "/auth/signin",
                data={"email": email, "password": password, "strategy": "plain_email"},
            )
            assert response.status_code == 200, response.text
        session = response.json()["data"]
        assert session["id"] == anonymous["data"]["id"]
        alice = next(s for s in session["signins"] if s["user_id"] == ALICE[2])
        assert session["active_signin"]["user_id"] == BOB[2]

        switched = client.post("/session/switch-sign-in", params={"sign_in_id": alice["id"]})

        assert switched.status_code == 200
        assert switched.json()["data"]["active_signin_id"] == alice["id"]
        assert client.get("/session").json()["data"]["active_signin"]["user_id"] == ALICE[2]

        # Back and forth: with several workers, every answer and every read that follows
        # (whichever process serves it) reflects the last switch.
        bob = next(s for s in session["signins"] if s["user_id"] == BOB[2])
        for target in [bob, alice] * 5:
            answer = client.post("/session/switch-sign-in", params={"sign_in_id": target["id"]})
            assert answer.json()["data"]["active_signin_id"] == target["id"]
            for _ in range(3):
                read = client.get("/session").json()["data"]
                assert read["active_signin_id"] == target["id"]


def test_directory_load_is_idempotent_and_reports_it(durable_database_url: str) -> None:
    first = run(["directory", "load", str(DEMO_DIRECTORY)], durable_database_url)
    second = run(["directory", "load", str(DEMO_DIRECTORY)], durable_database_url)
    assert first.returncode == 0, first.stderr
    assert "users 3 created" in first.stdout
    assert second.returncode == 0, second.stderr
    assert "users 0 created, 0 updated, 3 unchanged" in second.stdout


def test_a_malformed_directory_is_refused_naming_the_entry(
    durable_database_url: str, tmp_path: Path
) -> None:
    directory = json.loads(DEMO_DIRECTORY.read_text())
    directory["organization_memberships"][1]["user_id"] = "199999999999999999"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(directory))

    result = run(["directory", "load", str(bad)], durable_database_url)

    assert result.returncode == 1
    assert "organization_memberships[1].user_id" in result.stderr
    assert "alice-demo-password" not in result.stderr + result.stdout
    after = run(["directory", "load", str(DEMO_DIRECTORY)], durable_database_url)
    assert "users 3 created" in after.stdout  # nothing of the bad file was loaded


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "postgresql://postgres@127.0.0.1:1/nowhere",
            "cannot open PostgreSQL at 127.0.0.1:1/nowhere",
        ),
        ("sqlite:///no/such/dir/x.db", "directory no/such/dir does not exist"),
        ("mysql://x", "SESSION_LEDGER_DATABASE_URL"),
    ],
)
def test_an_unusable_store_is_one_clear_line(url: str, expected: str) -> None:
    result = run(["directory", "load", str(DEMO_DIRECTORY)], url)
    assert result.returncode == 1
    assert expected in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr


def test_help_lists_the_commands() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "api.cli", "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0
    for command in ("serve", "directory"):
        assert command in result.stdout
