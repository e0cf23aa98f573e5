"""Time travel: the state at any past version, or time, is what the service answered then.

Hypothesis drives random histories over HTTP (sign-ins, wrong passwords, switches of sign-in,
organization and workspace, sign-outs, reads, and the clock moving between steps, past
attempt lifetimes, the idle timeout and sign-in lifetimes). After each step that wrote to
the session and answered 200, the answer's Session is kept with the session's version (from
the admin events route) and the time. At the end, for every kept version,
``GET /admin/sessions/{id}/state?version=N`` and ``?at=<that time>`` give that same Session.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, ClassVar

import httpx
import pytest
from fastapi.testclient import TestClient
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    precondition,
    rule,
    run_state_machine_as_test,
)

from application.read_model import rfc3339
from infrastructure.clock import SettableClock
from tests.audit.support import TOKEN, admin_data, session_events
from tests.e2e.harness import START, Browser, Json, Stack, open_stack
from tests.helpers import ACME, ACME_DATA, ACME_WEB, ALICE, BOB, CAROL, GLOBEX, at_most

USERS = [ALICE, BOB, CAROL]
CLOCK_JUMPS = [
    timedelta(seconds=30),
    timedelta(minutes=5),
    timedelta(minutes=20),  # past the activity resolution: a read records activity
    timedelta(minutes=31),  # past an attempt's lifetime
    timedelta(hours=3),
    timedelta(days=8),  # past the idle timeout
    timedelta(days=31),  # past a sign-in's lifetime
]
PAUSE = timedelta(seconds=1)  # between any two requests, so every step has its own time


class TimeTravel(RuleBasedStateMachine):
    """One browser's session per example, on a store shared by the examples of a test."""

    stack: ClassVar[Stack]

    def __init__(self) -> None:
        super().__init__()
        self.browser = Browser(TestClient(self.stack.app, base_url="https://testserver"))
        self.session_id = ""
        self.version = 0
        self.sign_in_ids: list[str] = []
        self.answers: dict[int, tuple[Json, datetime]] = {}

    # Plumbing ---------------------------------------------------------------------------

    def send(self, method: str, path: str, **kwargs: Any) -> None:
        """One request at its own moment; keep its answer if it wrote a new version."""
        self.stack.clock.advance(PAUSE)
        response: httpx.Response = self.browser.send(method, path, **kwargs)
        body = response.json()
        assert response.status_code in (200, 400), response.text
        if not self.session_id:
            self.session_id = body["session"]["id"]
        version = session_events(self.stack.browser, self.session_id)[-1]["version"]
        assert version >= self.version
        if response.status_code == 200:
            for sign_in in body["data"]["signins"]:
                if sign_in["id"] not in self.sign_in_ids:
                    self.sign_in_ids.append(sign_in["id"])
            if version > self.version:
                self.answers[version] = (body["data"], self.stack.clock.now())
        self.version = version

    def sign_in_id(self, index: int) -> str:
        return self.sign_in_ids[index % len(self.sign_in_ids)]

    # Rules ------------------------------------------------------------------------------

    @initialize(start=st.sampled_from(["anonymous", "signed in", "wrong password"]))
    def open_session(self, start: str) -> None:
        if start == "anonymous":
            self.send("GET", "/session")
        else:
            self.sign_in(ALICE, right=start == "signed in")

    @rule(user=st.sampled_from(USERS), right=st.sampled_from([True, True, True, False]))
    def sign_in(self, user: tuple[str, str, str], right: bool) -> None:
        email, password, _ = user
        form = {
            "email": email,
            "password": password if right else "wrong-password",
            "strategy": "plain_email",
        }
        self.send("POST", "/auth/signin", data=form)

    @precondition(lambda self: bool(self.sign_in_ids))
    @rule(index=st.integers(0, 7))
    def switch_sign_in(self, index: int) -> None:
        self.send("POST", "/session/switch-sign-in", params={"sign_in_id": self.sign_in_id(index)})

    @precondition(lambda self: bool(self.sign_in_ids))
    @rule(index=st.integers(0, 7))
    def sign_out(self, index: int) -> None:
        self.send("POST", "/session/sign-out", params={"sign_in_id": self.sign_in_id(index)})

    @rule()
    def sign_out_of_all(self) -> None:
        self.send("POST", "/session/sign-out")

    @rule(organization=st.sampled_from([ACME, GLOBEX, ""]))
    def switch_organization(self, organization: str) -> None:
        self.send("POST", "/session/switch-organization", params={"organization_id": organization})

    @rule(workspace=st.sampled_from([ACME_WEB, ACME_DATA, ""]))
    def switch_workspace(self, workspace: str) -> None:
        self.send("POST", "/session/switch-workspace", params={"workspace_id": workspace})

    @rule()
    def read_session(self) -> None:
        self.send("GET", "/session")

    @rule(jump=st.sampled_from(CLOCK_JUMPS))
    def wait(self, jump: timedelta) -> None:
        self.stack.clock.advance(jump)

    # The check --------------------------------------------------------------------------

    def teardown(self) -> None:
        self.browser.client.close()
        if not self.session_id:
            return
        admin, path = self.stack.browser, f"/admin/sessions/{self.session_id}/state"
        events = session_events(admin, self.session_id)
        assert [e["version"] for e in events] == list(range(1, len(events) + 1))
        times = {e["version"]: e["time"] for e in events}
        for version, (answer, moment) in self.answers.items():
            expected = {"version": version, "session": answer}
            assert times[version] == rfc3339(moment)
            assert admin_data(admin, path, version=version) == expected, f"version {version}"
            assert admin_data(admin, path, at=rfc3339(moment)) == expected, f"at {moment}"


@pytest.mark.slow  # a long state machine over HTTP
def test_the_state_at_every_version_and_time_is_what_the_service_answered_then(
    durable_database_url: str,
) -> None:
    with open_stack(
        durable_database_url, admin_token=TOKEN, rate_limits=False, max_sign_ins=2
    ) as stack:
        machine = type("TimeTravelOnStore", (TimeTravel,), {"stack": stack})
        run_state_machine_as_test(  # type: ignore[no-untyped-call]
            machine,
            settings=settings(max_examples=at_most(20), stateful_step_count=50),
        )


def test_the_state_at_the_time_an_event_shows_includes_that_event(
    durable_database_url: str,
) -> None:
    # Given a real clock's sub-millisecond times
    clock = SettableClock(START + timedelta(microseconds=123_456))
    with open_stack(durable_database_url, clock=clock, admin_token=TOKEN) as stack:
        alice = stack.browser.signed_in(ALICE)
        clock.advance(timedelta(seconds=3, microseconds=1_500))
        switched = stack.browser.switch_organization(ACME)
        assert switched.status_code == 200, switched.text
        # When an auditor asks for the state at the time the events route shows for it
        last = session_events(stack.browser, alice["session_id"])[-1]
        assert last["type"] == "MembershipActivated"
        path = f"/admin/sessions/{alice['session_id']}/state"
        answer = admin_data(stack.browser, path, at=last["time"])
    # Then that event is included
    assert answer["version"] == last["version"]
    assert answer["session"] == switched.json()["data"]
