"""Every answer names its request (``X-Request-Id``), a 500 too, and every log line written
while serving a request carries that id: uvicorn's access lines, ours, and the mail outbox's
(which runs in its own thread).

Given ``session-ledger serve`` on a SQLite file, when a browser signs in, asks for a code,
and then meets a bug (the directory table is renamed away under the running service), then
the output of the server has each answer's id on its lines.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import httpx
import pytest

from tests.helpers import ALICE, CAROL
from tests.serving import SESSION_LEDGER, served_cli

pytestmark = [
    pytest.mark.slow,  # a served process
    pytest.mark.skipif(not SESSION_LEDGER, reason="session-ledger is not installed"),
]


def lines_of(output: list[str], request_id: str) -> list[str]:
    """The lines that name this request id the way the log format does: ``[id]``."""
    return [line for line in output if f"[{request_id}]" in line]


def test_every_answer_and_every_log_line_of_a_request_carry_its_id(sqlite_url: str) -> None:
    output: list[str] = []
    answers: dict[str, httpx.Response] = {}
    with served_cli(sqlite_url, output=output) as base, httpx.Client(base_url=base) as http:
        # Given a browser that signs Alice in and asks for a code for Carol
        form = {"email": ALICE[0], "password": ALICE[1], "strategy": "plain_email"}
        answers["sign-in"] = http.post("/auth/signin", data=form)
        started = http.post("/auth/signin", data={"email": CAROL[0], "strategy": "email_otp"})
        attempt = started.json()["data"]["signin_attempts"][-1]["id"]
        answers["code"] = http.post(
            "/auth/prepare-verification",
            params={"attempt_identifier": attempt, "strategy": "email_otp"},
            headers={"X-Request-Id": "caller-chosen-id-0001"},
        )
        # When the directory table disappears under the service (a bug, as far as it knows)
        path = Path(sqlite_url.removeprefix("sqlite:///"))
        with sqlite3.connect(path) as lite:
            lite.execute("ALTER TABLE directory_users RENAME TO directory_users_away")
        # (a sign-in reads it; rendering a session may answer from its cache of profiles)
        answers["bug"] = http.post("/auth/signin", data={**form, "email": CAROL[0]})

    # Then every answer has an id, the caller's own where it offered a sane one
    assert answers["sign-in"].status_code == 200
    assert answers["code"].headers["X-Request-Id"] == "caller-chosen-id-0001"
    assert answers["bug"].status_code == 500
    ids = {name: response.headers["X-Request-Id"] for name, response in answers.items()}
    assert len(set(ids.values())) == len(ids)
    # and the server's lines name them: the access line of each request,
    for name, request_id in ids.items():
        assert any('HTTP/1.1"' in line for line in lines_of(output, request_id)), name
    # the development-mode email of the code request (written by the outbox thread),
    assert any("DEVELOPMENT MODE" in line for line in lines_of(output, ids["code"]))
    # and the "unhandled" line of the bug, with no other request's id
    unhandled = [line for line in output if "unhandled" in line]
    assert unhandled, output
    assert all(re.search(rf"\[{re.escape(ids['bug'])}\]", line) for line in unhandled)


def test_served_uvicorn_believes_no_forwarded_header_that_our_settings_do_not_trust(
    sqlite_url: str,
) -> None:
    # Given serve with no trusted proxies (the default), reached directly from 127.0.0.1
    output: list[str] = []
    with served_cli(sqlite_url, output=output) as base, httpx.Client(base_url=base) as http:
        # When a client claims another address in X-Forwarded-For while signing in
        form = {"email": ALICE[0], "password": ALICE[1], "strategy": "plain_email"}
        spoofed = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}
        assert http.post("/auth/signin", data=form, headers=spoofed).status_code == 200
        devices = http.get("/me/signins").json()["data"]

    # Then the sign-in is kept with the address the connection came from (truncated, as the
    # audit settings keep it by default), not the claimed one: uvicorn's own proxy-header
    # handling would have believed any local peer
    assert [d["ip_address"] for d in devices] == ["127.0.0.0"]
