"""Wacht's own server SDK (``@wacht/backend`` from npm, pinned in package-lock.json) against us.

Given the service on a real port whose public URL is the origin the publishable key encodes,
and a session signed in over HTTP, the SDK's ``exchangeSessionForAuthToken`` (with its
defaults: the ``__session`` cookie, or ``__dev_session__`` in staging) gets a token from
GET /session/token, and its ``verifyAuthToken`` (JWKS from our origin, ``iss`` = our origin)
accepts it, after each kind of switch. The wall clock is used: the SDK checks ``exp`` and
``nbf`` against it. Without Node or the installed package the test skips loudly (under CI it
fails: ``.ci/run`` runs ``npm ci`` here).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import warnings
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.app import create_app
from infrastructure.clock import SystemClock
from tests.conftest import IN_CI
from tests.helpers import ACME, ACME_DATA, ACME_WEB, ALICE, BOB, GLOBEX, services_for
from tests.serving import free_port, serving

pytestmark = pytest.mark.slow  # Node and a served instance

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "exchange.mjs"
PACKAGE = HERE / "node_modules" / "@wacht" / "backend" / "package.json"
NODE = shutil.which("node")
PINNED = json.loads((HERE / "package.json").read_text())["dependencies"]["@wacht/backend"]


def require_sdk() -> str:
    """Node's path; skip loudly, or under CI fail, without Node or the pinned package."""
    problem = ""
    if NODE is None:
        problem = "node is missing"
    elif not PACKAGE.exists():
        problem = f"@wacht/backend is not installed (npm ci --prefix {HERE})"
    elif json.loads(PACKAGE.read_text())["version"] != PINNED:
        problem = f"@wacht/backend is not the pinned {PINNED} (npm ci --prefix {HERE})"
    if problem:
        if IN_CI:
            pytest.fail(f"CI=true and {problem}")
        warnings.warn(f"SKIPPING the @wacht/backend interop test: {problem}", stacklevel=2)
        pytest.skip(f"SKIPPED LOUDLY: {problem}")
    assert NODE is not None
    return NODE


def exchange(node: str, publishable_key: str, token: str, dev: bool = False) -> dict[str, Any]:
    """What the SDK's exchange and verification give for a session token."""
    args = [node, str(SCRIPT), publishable_key, token] + (["dev"] if dev else [])
    done = subprocess.run(args, cwd=HERE, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


@pytest.mark.parametrize("mode", ["production", "staging"])
def test_the_server_sdk_exchanges_and_verifies_tokens_after_every_switch(
    durable_database_url: str, mode: str
) -> None:
    node = require_sdk()
    port = free_port()
    public = f"http://127.0.0.1:{port}"
    settings: dict[str, Any] = {
        "public_url": public,
        "cookie_secure": False,
        "deployment_mode": mode,
    }
    with (
        services_for(durable_database_url, clock=SystemClock(), **settings) as services,
        serving(create_app(services=services), port) as base,
        httpx.Client(base_url=base) as http,
    ):
        key = http.get("/deployment").json()["data"]["publishable_key"]
        staging = mode == "staging"

        def session_token() -> str:
            value = http.cookies.get("session_id")
            assert value
            return value

        def signed_in(user: tuple[str, str, str]) -> str:
            form = {"email": user[0], "password": user[1], "strategy": "plain_email"}
            answer = http.post("/auth/signin", data=form)
            assert answer.status_code == 200, answer.text
            # in staging the same token also comes as the development session header
            assert (answer.headers.get("x-development-session") == session_token()) is staging
            return str(answer.json()["data"]["active_signin_id"])

        def post(path: str, **params: str) -> None:
            answer = http.post(path, params=params)
            assert answer.status_code == 200, answer.text

        def expect(user: str, organization: str | None, workspace: str | None) -> None:
            result = exchange(node, key, session_token(), dev=staging)
            payload = result["payload"]
            assert payload is not None, result  # the SDK verified signature and issuer
            assert payload["iss"] == public
            assert payload["sub"] == user
            assert payload["sid"] == http.get("/session").json()["data"]["id"]
            assert payload["organization"] == organization
            assert payload["workspace"] == workspace
            assert result["expires"] == payload["exp"] * 1000
            assert result["nextDevSession"] is None  # a token exchange rotates nothing

        alice = signed_in(ALICE)
        expect(ALICE[2], None, None)
        post("/session/switch-organization", organization_id=ACME)
        expect(ALICE[2], ACME, None)
        post("/session/switch-workspace", workspace_id=ACME_DATA)
        expect(ALICE[2], ACME, ACME_DATA)
        signed_in(BOB)
        expect(BOB[2], None, None)
        post("/session/switch-workspace", workspace_id=ACME_WEB)
        expect(BOB[2], ACME, ACME_WEB)
        post("/session/switch-sign-in", sign_in_id=alice)
        expect(ALICE[2], ACME, ACME_DATA)  # Alice comes back with her context
        post("/session/switch-organization", organization_id=GLOBEX)
        expect(ALICE[2], GLOBEX, None)
        post("/session/switch-organization", organization_id="")
        expect(ALICE[2], None, None)

        # Signed out, the exchange gets nothing
        post("/session/sign-out")
        assert exchange(node, key, session_token(), dev=staging)["authToken"] is None
