"""Browsers hitting both API nodes while the cluster is broken, every answer written down.

Each browser thread plays one story per session, over and over with new sessions: sign
Alice in, sign Bob in, switch back to Alice, choose or leave Acme, sign Bob out, sign out of all.
Every write answered 2xx is an *acknowledged write*: what it changed (the event kind and the
sign-in it names) is kept per session, to be found later in the event history, in order.
A failed step ends that story (the next steps depend on it) and a new session starts.
A browser whose API node stops answering goes to the other one, as a load balancer would.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.helpers import ACME, ALICE, BOB

# Generous: a command must answer (2xx or 503) well within it; a timeout counts as a hang.
REQUEST_TIMEOUT = 30.0


@dataclass(frozen=True)
class Answer:
    """One request and what came back."""

    node: int
    action: str
    status: int  # 0: no HTTP answer (connection refused or reset)
    code: str
    retry_after: str | None
    started: float
    ended: float


@dataclass
class Ledger:
    """Everything the browsers saw, shared between their threads."""

    answers: list[Answer] = field(default_factory=list)
    acknowledged: dict[int, list[tuple[str, int | None]]] = field(default_factory=dict)
    hangs: int = 0
    stale_reads: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, answer: Answer) -> None:
        """Keep one answer."""
        with self.lock:
            self.answers.append(answer)

    def acknowledge(self, session_id: int, kind: str, sign_in_id: int | None) -> None:
        """Keep one write that was answered 2xx."""
        with self.lock:
            self.acknowledged.setdefault(session_id, []).append((kind, sign_in_id))

    def writes_acknowledged(self) -> int:
        """How many writes were answered 2xx."""
        with self.lock:
            return sum(len(kinds) for kinds in self.acknowledged.values())

    def failures(self, since: float = 0.0) -> Counter[str]:
        """Failed answers by ``status code``, of requests still open at ``since`` or later."""
        with self.lock:
            return Counter(
                f"{a.status} {a.code}".strip()
                for a in self.answers
                if a.ended >= since and not 200 <= a.status < 300
            )

    def longest_write_gap(self, since: float) -> float:
        """The longest time, from ``since`` on, in which no write was answered 2xx: how
        long the clients saw nothing writable (the gap before a fault is small: six
        browsers write many times a second)."""
        with self.lock:
            ends = sorted(
                a.ended
                for a in self.answers
                if a.ended >= since and a.action != "read" and 200 <= a.status < 300
            )
        moments = [since, *ends]
        return max((b - a for a, b in itertools.pairwise(moments)), default=0.0)


class _StoryFailed(Exception):
    pass


class Browser:
    """One thread of browsers: one session after another on an API node."""

    def __init__(self, ledger: Ledger, urls: dict[int, str], node: int) -> None:
        self.ledger = ledger
        self.urls = urls
        self.node = node

    def _send(self, client: httpx.Client, action: str, method: str, path: str, **kw: Any) -> Any:
        started = time.monotonic()
        try:
            response = client.request(method, self.urls[self.node] + path, **kw)
        except httpx.TimeoutException:
            with self.ledger.lock:
                self.ledger.hangs += 1
            ended = time.monotonic()
            self.ledger.record(Answer(self.node, action, 0, "TIMEOUT", None, started, ended))
            raise _StoryFailed from None
        except httpx.TransportError:
            self.ledger.record(
                Answer(self.node, action, 0, "NO_ANSWER", None, started, time.monotonic())
            )
            # What a load balancer does with a node that refuses connections.
            self.node = next(n for n in self.urls if n != self.node)
            raise _StoryFailed from None
        ended = time.monotonic()
        body = _json(response)
        errors = body.get("errors") or [{}]
        code = "" if response.is_success else str(errors[0].get("code", "NOT_ENVELOPE"))
        self.ledger.record(
            Answer(
                self.node,
                action,
                response.status_code,
                code,
                response.headers.get("retry-after"),
                started,
                ended,
            )
        )
        if not response.is_success:
            if response.status_code == 503:
                # Do as told, within reason: the test is bounded.
                time.sleep(min(float(response.headers.get("retry-after") or 1), 1.0))
            raise _StoryFailed
        return body["data"]

    def story(self) -> None:
        """One session's story; raises ``_StoryFailed`` at the first failed step."""
        with httpx.Client(timeout=REQUEST_TIMEOUT) as client:
            session = int(self._send(client, "read", "GET", "/session")["id"])
            ack = self.ledger.acknowledge
            alice = self._sign_in(client, ALICE)
            ack(session, "SignInCompleted", alice)
            bob = self._sign_in(client, BOB)
            ack(session, "SignInCompleted", bob)
            path = f"/session/switch-sign-in?sign_in_id={alice}"
            before = self._send(client, "write", "POST", path)["active_signin"]
            ack(session, "ActiveSignInSwitched", alice)
            path = f"/session/switch-organization?organization_id={ACME if bob % 2 else ''}"
            after = self._send(client, "write", "POST", path)["active_signin"]
            # Alice's sign-in starts from the organization she chose last, in any session:
            # choosing it again records nothing.
            key = "active_organization_membership_id"
            if before[key] != after[key]:
                ack(session, "MembershipActivated", alice)
            self._send(client, "write", "POST", f"/session/sign-out?sign_in_id={bob}")
            ack(session, "SignedOut", bob)
            seen = self._send(client, "read", "GET", "/session")
            # Read-your-writes, whichever node and database answered the read.
            if seen["active_signin_id"] != str(alice) or str(bob) in {
                s["id"] for s in seen["signins"]
            }:
                with self.ledger.lock:
                    self.ledger.stale_reads += 1
            self._send(client, "write", "POST", "/session/sign-out")
            ack(session, "SignedOutOfAll", None)

    def _sign_in(self, client: httpx.Client, user: tuple[str, str, str]) -> int:
        form = {"strategy": "plain_email", "email": user[0], "password": user[1]}
        data = self._send(client, "write", "POST", "/auth/signin", data=form)
        return int(data["active_signin_id"])

    def run(self, stop: threading.Event) -> None:
        """Stories until ``stop`` is set."""
        while not stop.is_set():
            try:
                self.story()
            except _StoryFailed:
                continue


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


class Traffic:
    """``browsers`` threads of :class:`Browser`, half on each API node, until stopped."""

    def __init__(self, urls: dict[int, str], browsers: int = 6) -> None:
        self.ledger = Ledger()
        self._stop = threading.Event()
        nodes = sorted(urls)
        self._threads = [
            threading.Thread(
                target=Browser(self.ledger, urls, nodes[i % len(nodes)]).run,
                args=(self._stop,),
                daemon=True,
            )
            for i in range(browsers)
        ]

    def __enter__(self) -> Traffic:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_for_writes(self, count: int, timeout: float = 120) -> None:
        """Until ``count`` more writes than now were acknowledged (AssertionError at timeout)."""
        target = self.ledger.writes_acknowledged() + count
        deadline = time.monotonic() + timeout
        while self.ledger.writes_acknowledged() < target:
            assert time.monotonic() < deadline, f"fewer than {count} writes in {timeout}s"
            time.sleep(0.1)

    def stop(self) -> None:
        """Stop every browser and wait for them (each finishes its request in flight)."""
        self._stop.set()
        for thread in self._threads:
            thread.join(REQUEST_TIMEOUT + 5)
