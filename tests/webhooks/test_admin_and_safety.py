"""Operating webhooks: the admin API and CLI, bad input, secrets at rest, and SSRF refusal.

Endpoints are managed only with the admin token; bad input gets the envelope with a clear
code and changes nothing; a signing secret is shown once and is not in a dump of the store;
URLs on loopback, private and link-local addresses are refused unless allowed, and a host
name that resolves to one is refused at the attempt, without any request reaching it.
"""

from __future__ import annotations

import base64
import json

import httpx
import pytest

from tests.audit.support import run_cli
from tests.auth.store_dump import store_text
from tests.helpers import ALICE
from tests.webhooks.receiver import Receiver, running, wait_for
from tests.webhooks.support import (
    ADMIN,
    ADMIN_TOKEN,
    WEBHOOK_KEY,
    catch_up,
    every_event_story,
    ok,
    webhook_stack,
)

STORES = ["sqlite", "postgres"]
ENDPOINTS = "/admin/webhooks/endpoints"


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["data"] is None
    assert [e["code"] for e in body["errors"]] == [code]
    assert "Traceback" not in response.text


@pytest.mark.parametrize("store", STORES)
def test_admin_routes_need_the_token_and_refuse_bad_input(
    store: str, request: pytest.FixtureRequest
) -> None:
    url = str(request.getfixturevalue(f"{store}_url"))
    with running(Receiver()) as receiver, webhook_stack(url) as stack:
        b = stack.browser
        for method, path in [
            ("GET", "/admin/webhooks/catalogue"), ("GET", ENDPOINTS), ("POST", ENDPOINTS),
            ("GET", "/admin/webhooks/status"), ("POST", f"{ENDPOINTS}/1/replay"),
        ]:  # fmt: skip
            assert_error(b.send(method, path, json={}), 401, "UNAUTHORIZED")
            wrong = {"Authorization": "Bearer wrong"}
            assert_error(b.send(method, path, json={}, headers=wrong), 401, "UNAUTHORIZED")

        catalogue = ok(b.send("GET", "/admin/webhooks/catalogue", headers=ADMIN))["events"]
        assert [e["type"] for e in catalogue][:3] == [
            "session.created", "session.deleted", "session.expired",
        ]  # fmt: skip
        assert all(e["example"]["type"] == e["type"] for e in catalogue)

        def post(body: object) -> httpx.Response:
            return b.send("POST", ENDPOINTS, json=body, headers=ADMIN)

        assert_error(post({"url": receiver.url, "event_types": ["user.created"]}), 400,
                     "INVALID_REQUEST")  # fmt: skip
        assert_error(post({"event_types": []}), 400, "INVALID_REQUEST")
        assert_error(post({"url": "ftp://example.com/x"}), 400, "INVALID_WEBHOOK_URL")
        bad = b.send("POST", ENDPOINTS, content=b"{not json", headers=ADMIN)
        assert_error(bad, 400, "INVALID_REQUEST")
        for raw in ["abc", "0", "01", "-1", "18446744073709551616"]:
            assert_error(b.send("GET", f"{ENDPOINTS}/{raw}", headers=ADMIN), 400,
                         "INVALID_REQUEST")  # fmt: skip
        assert_error(b.send("GET", f"{ENDPOINTS}/123", headers=ADMIN), 400, "UNKNOWN_ENDPOINT")
        assert ok(b.send("GET", ENDPOINTS, headers=ADMIN))["endpoints"] == []

        created = ok(post({"url": receiver.url, "event_types": ["session.created"]}))
        secret = created["secret"]
        endpoint_id = created["endpoint"]["id"]
        shown = b.send("GET", f"{ENDPOINTS}/{endpoint_id}", headers=ADMIN)
        listed = b.send("GET", ENDPOINTS, headers=ADMIN)
        assert secret not in shown.text
        assert secret not in listed.text
        assert_error(b.send("POST", f"{ENDPOINTS}/{endpoint_id}/replay", json={},
                            headers=ADMIN), 400, "INVALID_REQUEST")  # fmt: skip
        assert_error(b.send("POST", f"{ENDPOINTS}/{endpoint_id}/replay",
                            json={"start": "2030-01-01T10:00:00"}, headers=ADMIN), 400,
                     "INVALID_REQUEST")  # fmt: skip

        # The attempts of a message, as the admin API shows them.
        receiver.secrets.append(secret)
        stack.services.webhooks.start()
        b.signed_in(ALICE)
        wait_for(lambda: len(receiver.accepted_ids()) == 1, what="a delivery")
        (message_id,) = receiver.accepted_ids()
        path = f"{ENDPOINTS}/{endpoint_id}/deliveries/{message_id}/attempts"
        wait_for(lambda: bool(ok(b.send("GET", path, headers=ADMIN))["attempts"]))
        (attempt,) = ok(b.send("GET", path, headers=ADMIN))["attempts"]
        assert attempt["status_code"] == 200
        assert attempt["outcome"] == "delivered"
        assert attempt["response"] == "receiver says 200"
        assert attempt["latency_ms"] >= 0
        assert attempt["attempted_at"].endswith("Z")

        # The secret is not in the store: neither the whsec_ text nor its key bytes.
        key = base64.b64decode(secret.removeprefix("whsec_"))
        dump = store_text(url, stack.services)
        assert "webhook_endpoints" in dump
        assert secret not in dump
        assert secret.removeprefix("whsec_") not in dump
        assert key.hex() not in dump


@pytest.mark.parametrize("store", STORES)
def test_without_the_webhook_key_endpoints_cannot_be_made(
    store: str, request: pytest.FixtureRequest
) -> None:
    url = str(request.getfixturevalue(f"{store}_url"))
    with webhook_stack(url, webhook_key=None) as stack:
        response = stack.browser.send(
            "POST", ENDPOINTS, json={"url": "https://example.com/hooks"}, headers=ADMIN
        )
        assert_error(response, 400, "WEBHOOKS_NOT_CONFIGURED")
        assert ok(stack.browser.send("GET", ENDPOINTS, headers=ADMIN))["endpoints"] == []


REFUSED_URLS = [
    "http://127.0.0.1:8080/hooks",
    "http://127.1.2.3/",
    "http://10.1.2.3/",
    "http://172.16.0.1/",
    "http://192.168.0.10/",
    "http://100.64.0.1/",
    "http://169.254.169.254/latest/meta-data/",
    "http://0.0.0.0/",
    "http://[::1]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[fe80::1]/",
    "http://[fd00::1]/",
    "https://224.0.0.1/",
    "ftp://example.com/hooks",
    "file:///etc/passwd",
    "javascript:alert(1)",
    "http://user:password@example.com/hooks",
    "http:///nohost",
    "http://example.com:99999/",
    "not a url",
    "",
]


@pytest.mark.parametrize("store", STORES)
def test_ssrf_targets_are_refused_unless_allowed(
    store: str, request: pytest.FixtureRequest
) -> None:
    url = str(request.getfixturevalue(f"{store}_url"))
    with (
        running(Receiver()) as receiver,
        webhook_stack(url, webhook_allow_private_addresses=False) as stack,
    ):
        b = stack.browser
        for target in REFUSED_URLS:
            response = b.send("POST", ENDPOINTS, json={"url": target}, headers=ADMIN)
            assert_error(response, 400, "INVALID_WEBHOOK_URL")
        assert ok(b.send("GET", ENDPOINTS, headers=ADMIN))["endpoints"] == []

        # A name is checked when it is resolved, at every attempt: localhost is loopback.
        hooks = stack.services.webhooks
        endpoint, secret = hooks.create_endpoint(
            f"http://localhost:{receiver.port}/hooks", ["session.created"]
        )
        receiver.secrets.append(secret)
        hooks.start()
        b.signed_in(ALICE)
        catch_up(stack)
        (delivery,) = hooks.deliveries(endpoint.id)

        def attempts() -> list[dict[str, object]]:
            return hooks.attempts(endpoint.id, delivery["message_id"])

        wait_for(lambda: len(attempts()) >= 2, what="refused attempts")
        for attempt in attempts():
            assert attempt["status_code"] is None
            assert attempt["address"] is None
            assert "refused" in str(attempt["error"])
        assert receiver.requests == []


@pytest.mark.slow  # `session-ledger webhooks …` as processes
def test_the_cli_manages_endpoints_and_shows_attempts(sqlite_url: str) -> None:
    env = {
        "SESSION_LEDGER_WEBHOOK_KEY": WEBHOOK_KEY,
        "SESSION_LEDGER_WEBHOOK_ALLOW_PRIVATE_ADDRESSES": "true",
        "SESSION_LEDGER_ADMIN_TOKEN": ADMIN_TOKEN,
    }
    with running(Receiver()) as receiver:
        added = run_cli(["webhooks", "add", receiver.url, "--event", "session.created"],
                        sqlite_url, env)  # fmt: skip
        assert added.returncode == 0, added.stderr
        secret = added.stdout.rsplit("secret (shown once): ", 1)[1].strip()
        endpoint_id = json.loads(added.stdout.split("secret (shown once)")[0])["endpoint"]["id"]
        receiver.secrets.append(secret)
        listed = run_cli(["webhooks", "list"], sqlite_url, env)
        assert endpoint_id in listed.stdout
        assert secret not in listed.stdout

        refused = run_cli(
            ["webhooks", "add", "http://10.0.0.1/"],
            sqlite_url,
            {**env, "SESSION_LEDGER_WEBHOOK_ALLOW_PRIVATE_ADDRESSES": "false"},
        )
        assert refused.returncode == 1
        assert "private or reserved address" in refused.stderr
        unknown = run_cli(["webhooks", "show", "123"], sqlite_url, env)
        assert unknown.returncode == 1
        assert "No such webhook endpoint" in unknown.stderr

        with webhook_stack(sqlite_url) as stack:
            every_event_story(stack)
            stack.services.webhooks.start()
            # Three sessions get a first sign-in: the browser twice, and the other browser.
            wait_for(lambda: len(receiver.accepted_ids()) == 3, what="every session.created")
            hooks = stack.services.webhooks

            def recorded() -> bool:
                statuses = [d["status"] for d in hooks.deliveries(int(endpoint_id))]
                return statuses == ["delivered"] * 3

            wait_for(recorded, what="every answer recorded")
        message_id = sorted(receiver.accepted_ids())[0]
        shown = run_cli(["webhooks", "attempts", endpoint_id, message_id], sqlite_url, env)
        assert shown.returncode == 0, shown.stderr
        (attempt,) = json.loads(shown.stdout)
        assert attempt["status_code"] == 200
        assert attempt["outcome"] == "delivered"

        rotated = run_cli(["webhooks", "rotate-secret", endpoint_id, "--overlap", "60"],
                          sqlite_url, env)  # fmt: skip
        assert rotated.returncode == 0
        assert "whsec_" in rotated.stdout
        replayed = run_cli(["webhooks", "replay", endpoint_id, "--since-position", "0"],
                           sqlite_url, env)  # fmt: skip
        assert json.loads(replayed.stdout) == {"queued": 3}  # every session.created
        disabled = run_cli(["webhooks", "disable", endpoint_id], sqlite_url, env)
        assert json.loads(disabled.stdout)["disabled_reason"] == "disabled by an operator"
        status = json.loads(run_cli(["webhooks", "status"], sqlite_url, env).stdout)
        assert status["disabled_endpoints"] == 1
        assert status["lag"] == 0
