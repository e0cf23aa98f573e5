"""better-auth (Node) with its multiSession plugin, driven over HTTP: the peer of bench/peer.py.

Installs the exact versions of ``bench/peer/package-lock.json`` with ``npm ci`` (better-sqlite3
builds with node-gyp when no prebuilt binary fits: it needs g++, make and python3), runs
``bench/peer/server.mjs`` on SQLite or PostgreSQL, signs two accounts into each browser with
real ``/sign-in/email`` requests, and checks by hand that ``/multi-session/set-active`` really
changes the account that ``/get-session`` answers with.
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

PEER_DIR = Path(__file__).resolve().parent / "peer"
SET_ACTIVE = "/api/auth/multi-session/set-active"
ACCOUNTS = ("alice", "bob")


def install() -> None:
    """``npm ci`` in bench/peer unless the locked packages are already there."""
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            raise SystemExit(f"bench.peer needs {tool} (Debian: apt-get install -y nodejs npm)")
    installed = PEER_DIR / "node_modules" / ".package-lock.json"
    lock = PEER_DIR / "package-lock.json"
    if installed.exists() and installed.stat().st_mtime >= lock.stat().st_mtime:
        return
    print("installing better-auth from bench/peer/package-lock.json (npm ci) ...", flush=True)
    subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund"],  # noqa: S607
        cwd=PEER_DIR,
        check=True,
    )


def versions() -> str:
    """The installed versions of what the peer runs on, for the record."""
    node = subprocess.run(
        ["node", "--version"],  # noqa: S607
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    found = []
    for package in ("better-auth", "better-sqlite3", "pg"):
        meta = json.loads((PEER_DIR / "node_modules" / package / "package.json").read_text())
        found.append(f"{package} {meta['version']}")
    return f"node {node}, " + ", ".join(found)


def server_command(port: int, store: str, *, migrate: bool = False) -> list[str]:
    """The command line of server.mjs for ``store`` (a SQLite path or a postgresql:// URL)."""
    kind = "--postgres" if store.startswith("postgresql://") else "--sqlite"
    return [
        "node", str(PEER_DIR / "server.mjs"), "--port", str(port), kind, store,
        *(["--migrate", "1"] if migrate else []),
    ]  # fmt: skip


def server_env() -> dict[str, str]:
    """The environment of the peer: production mode and a fresh secret."""
    return {**os.environ, "NODE_ENV": "production", "BENCH_PEER_SECRET": secrets.token_hex(32)}


def migrate(store: str, env: dict[str, str]) -> None:
    """Create better-auth's tables and the two accounts."""
    subprocess.run(server_command(0, store, migrate=True), env=env, check=True, cwd=PEER_DIR)  # noqa: S603


@dataclass(frozen=True)
class Browser:
    """One browser with both accounts signed in: its Cookie header and both session tokens."""

    cookie: str
    tokens: dict[str, str]  # account name -> better-auth session token


class _Jar:
    """Just enough of a cookie jar: name -> value, from Set-Cookie headers."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    def take(self, answer: http.client.HTTPResponse) -> None:
        for header in answer.headers.get_all("set-cookie") or []:
            pair, _, attributes = header.partition(";")
            name, _, value = pair.strip().partition("=")
            if "max-age=0" in attributes.lower().replace(" ", ""):
                self.values.pop(name, None)
            else:
                self.values[name] = value

    def header(self) -> str:
        return "; ".join(f"{k}={v}" for k, v in self.values.items())


def call(
    port: int, method: str, path: str, jar: _Jar, body: dict[str, str] | None = None
) -> tuple[int, dict[str, object]]:
    """One request as a browser on this origin makes it; updates the jar; (status, JSON)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        headers = {"Origin": f"http://127.0.0.1:{port}", "Cookie": jar.header()}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        conn.request(method, path, body=data, headers=headers)
        answer = conn.getresponse()
        raw = answer.read()
        jar.take(answer)
        return answer.status, (json.loads(raw) if raw and raw != b"null" else {})
    finally:
        conn.close()


def _sign_in_browser(port: int) -> Browser:
    jar = _Jar()
    tokens: dict[str, str] = {}
    for name in ACCOUNTS:
        for _ in range(5):
            status, answer = call(
                port,
                "POST",
                "/api/auth/sign-in/email",
                jar,
                {"email": f"{name}@example.com", "password": f"{name}-peer-password"},
            )
            if status < 500:
                break
            # The shared PostgreSQL can be out of connections for a moment (others' tests).
            time.sleep(2)
        if status != 200:
            raise SystemExit(f"better-auth sign-in of {name} answered {status}: {answer}")
        tokens[name] = str(answer["token"])
    multi = [k for k in jar.values if "_multi-" in k]
    if len(multi) != len(ACCOUNTS):
        raise SystemExit(f"expected {len(ACCOUNTS)} multi-session cookies, got {multi}")
    return Browser(jar.header(), tokens)


def sign_in_browsers(port: int, count: int) -> list[Browser]:
    """``count`` browsers, each with Alice and Bob signed in (Bob active), by real requests."""
    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(lambda _: _sign_in_browser(port), range(count)))


def check_set_active(port: int, browser: Browser) -> None:
    """By hand: set-active to each account, then get-session must answer as that account."""
    for name in (*ACCOUNTS, ACCOUNTS[0]):
        jar = _Jar()
        for pair in browser.cookie.split("; "):
            key, _, value = pair.partition("=")
            jar.values[key] = value
        status, answer = call(port, "POST", SET_ACTIVE, jar, {"sessionToken": browser.tokens[name]})
        if status != 200:
            raise SystemExit(f"set-active answered {status}: {answer}")
        status, session = call(port, "GET", "/api/auth/get-session", jar)
        user = session.get("user") if status == 200 else None
        email = user.get("email") if isinstance(user, dict) else None
        if email != f"{name}@example.com":
            raise SystemExit(f"after set-active to {name}, get-session answered {status} {email}")


def wrk_rows(browsers: list[Browser]) -> list[tuple[str, str, str, str, str]]:
    """(cookie, path A, body A, path B, body B) per browser: set-active to each account in turn."""
    return [
        (
            b.cookie,
            SET_ACTIVE,
            json.dumps({"sessionToken": b.tokens["alice"]}),
            SET_ACTIVE,
            json.dumps({"sessionToken": b.tokens["bob"]}),
        )
        for b in browsers
    ]
