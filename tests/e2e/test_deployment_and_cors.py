"""GET /deployment, CORS for the app's origin, development sessions in staging mode, and the
cookie name and token issuer Wacht's server SDK expects. On SQLite and PostgreSQL."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest

from tests.auth.support import jwks_keys, verified_claims
from tests.e2e.harness import Stack
from tests.e2e.wire import envelope, ok, refused
from tests.helpers import ALICE, BOB

APP = "https://app.example.com"
PARTNER = "https://partner.example.org"
PUBLIC = "https://frontend.example.com"
EVIL = "https://evil.example.net"
DEV = "__dev_session__"


def cors_headers(response: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k.startswith("access-control-")}


def vary(response: httpx.Response) -> list[str]:
    return [v.strip().lower() for v in response.headers.get("vary", "").split(",") if v.strip()]


# GET /deployment ------------------------------------------------------------------------------


def test_the_deployment_says_what_settings_and_directory_say(build_stack: Any) -> None:
    stack: Stack = build_stack(
        public_url=PUBLIC + "/", frontend_url=APP, max_sign_ins=3, app_name="Ledger Demo",
        smtp_from="codes@mail.example.com", smtp_password="smtp-secret-value",
        admin_token="admin-secret-value", ui_settings={"tos_page_url": f"{APP}/terms"},
    )  # fmt: skip
    response = stack.browser.send("GET", "/deployment")
    body = envelope(response, 200)
    deployment = body["data"]
    assert body["session"] is None
    assert deployment["mode"] == "production"
    assert deployment["backend_host"] == PUBLIC
    assert deployment["frontend_host"] == APP
    assert deployment["mail_from_host"] == "mail.example.com"
    key = deployment["publishable_key"]
    assert key.startswith("pk_live_")
    assert base64.b64decode(key.split("_")[2]).decode() == PUBLIC  # as the SDK splits it
    auth = deployment["auth_settings"]
    assert auth["multi_session_support"]["enabled"] is True
    assert auth["multi_session_support"]["max_accounts_per_session"] == 3
    assert auth["auth_factors_enabled"]["email_password"] is True
    assert auth["auth_factors_enabled"]["email_otp"] is True
    assert auth["auth_factors_enabled"]["phone_otp"] is False
    assert auth["passkey"]["enabled"] is False
    assert auth["first_factor"] == "email_password"
    assert auth["alternate_first_factors"] == ["email_otp"]
    b2b = deployment["b2b_settings"]
    assert b2b["organizations_enabled"] is True
    assert b2b["workspaces_enabled"] is True
    assert b2b["organization_permissions"] == [
        "organization:admin", "organization:manage", "organization:read",
    ]  # fmt: skip
    assert b2b["workspace_permissions"] == ["workspace:read", "workspace:write"]
    ui = deployment["ui_settings"]
    assert ui["app_name"] == "Ledger Demo"
    assert ui["sign_in_page_url"] == f"{APP}/sign-in"
    assert ui["after_sign_out_one_page_url"] == f"{APP}/sign-in"
    assert ui["after_signin_redirect_url"] == f"{APP}/"
    assert ui["tos_page_url"] == f"{APP}/terms"
    assert "secret-value" not in response.text


def test_a_staging_deployment_has_a_test_key(build_stack: Any) -> None:
    stack: Stack = build_stack(public_url=PUBLIC, deployment_mode="staging")
    deployment = ok(stack.browser.send("GET", "/deployment"))
    assert deployment["mode"] == "staging"
    assert deployment["publishable_key"] == "pk_test_" + base64.b64encode(PUBLIC.encode()).decode()


# CORS -----------------------------------------------------------------------------------------


def cors_stack(build_stack: Any) -> Stack:
    stack: Stack = build_stack(public_url=PUBLIC, frontend_url=APP, allowed_origins=[PARTNER])
    return stack


@pytest.mark.parametrize("origin", [APP, PARTNER])
def test_allowed_origins_get_credentialed_cors(build_stack: Any, origin: str) -> None:
    browser = cors_stack(build_stack).browser
    answer = browser.send("GET", "/session", headers={"Origin": origin})
    assert cors_headers(answer) == {
        "access-control-allow-origin": origin,
        "access-control-allow-credentials": "true",
        "access-control-expose-headers": "X-Development-Session, X-Request-Id, Retry-After",
    }
    assert "origin" in vary(answer)
    # errors too, so the SDK can read their envelope
    failed = browser.send("POST", "/session/switch-sign-in", params={"sign_in_id": "x"},
                          headers={"Origin": origin})  # fmt: skip
    assert refused(failed, 400) == "INVALID_SIGN_IN_ID"
    assert failed.headers["access-control-allow-origin"] == origin
    # a cookie-carrying POST from the allowed origin is accepted
    form = {"email": ALICE[0], "password": ALICE[1], "strategy": "plain_email"}
    signed = browser.send("POST", "/auth/signin", data=form, headers={"Origin": origin})
    ok(signed)
    # and its preflight is answered
    preflight = browser.send("OPTIONS", "/me/signins/1/signout", headers={
        "Origin": origin, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    })  # fmt: skip
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == origin
    assert preflight.headers["access-control-allow-credentials"] == "true"
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert "Content-Type" in preflight.headers["access-control-allow-headers"]
    assert "origin" in vary(preflight)


def test_other_origins_get_no_cors_and_no_cookie_carrying_posts(build_stack: Any) -> None:
    browser = cors_stack(build_stack).browser
    answer = browser.send("GET", "/session", headers={"Origin": EVIL})
    assert answer.status_code == 200
    assert cors_headers(answer) == {}
    assert "origin" in vary(answer)
    form = {"email": ALICE[0], "password": ALICE[1], "strategy": "plain_email"}
    refused_post = browser.send("POST", "/auth/signin", data=form, headers={"Origin": EVIL})
    assert refused(refused_post, 403) == "FORBIDDEN_ORIGIN"
    assert cors_headers(refused_post) == {}
    preflight = browser.send("OPTIONS", "/session/sign-out", headers={
        "Origin": EVIL, "Access-Control-Request-Method": "POST",
    })  # fmt: skip
    assert refused(preflight, 405) == "METHOD_NOT_ALLOWED"
    assert cors_headers(preflight) == {}
    assert browser.session()["signins"] == []


# Development sessions -------------------------------------------------------------------------


def test_staging_carries_the_session_in_the_url_and_rotates_it(build_stack: Any) -> None:
    stack: Stack = build_stack(public_url=PUBLIC, frontend_url=APP, deployment_mode="staging")
    app = stack.browser  # sends no cookies: the SDK's staging fetches carry no credentials
    first = app.send("GET", "/session", params={DEV: ""}, headers={"Origin": APP})
    token = first.headers["x-development-session"]
    assert first.headers["access-control-allow-origin"] == APP
    session_id = ok(first)["id"]
    app.use_cookie(None)

    again = app.send("GET", "/session", params={DEV: token})
    assert ok(again)["id"] == session_id
    assert "x-development-session" not in again.headers  # nothing rotated
    form = {"email": ALICE[0], "password": ALICE[1], "strategy": "plain_email"}
    signed = app.send("POST", "/auth/signin", params={DEV: token}, data=form,
                      headers={"Origin": APP})  # fmt: skip
    app.use_cookie(None)
    rotated = signed.headers["x-development-session"]
    assert rotated != token
    assert ok(signed)["id"] == session_id
    assert refused(app.send("GET", "/session/token", params={DEV: token}), 401) == "UNAUTHORIZED"
    ok(app.send("GET", "/session/token", params={DEV: rotated}))
    out = app.send("POST", "/session/sign-out", params={DEV: rotated})
    app.use_cookie(None)
    assert ok(out)["signins"] == []
    assert out.headers["x-development-session"] not in (token, rotated)


def test_production_refuses_the_url_session_like_a_bad_cookie(build_stack: Any) -> None:
    stack: Stack = build_stack(public_url=PUBLIC)
    browser = stack.browser
    browser.signed_in(ALICE)
    token = browser.token
    session_id = browser.session()["id"]
    # with the cookie as well: a URL session is refused, whatever else the request carries
    assert refused(browser.send("GET", "/session/token", params={DEV: token}), 401) == (
        "UNAUTHORIZED"
    )
    switched = browser.send("POST", "/session/switch-sign-in", params={DEV: token})
    assert refused(switched, 401) == "UNAUTHORIZED"
    # and so is its name escaped (parameter names are decoded before they are compared)
    escaped = browser.send("POST", f"/session/switch-sign-in?__dev%5Fsession__={token}")
    assert escaped.request.url.query.startswith(b"__dev%5Fsession__=")
    assert refused(escaped, 401) == "UNAUTHORIZED"
    browser.use_cookie(None)
    fresh = browser.send("GET", "/session", params={DEV: token})
    assert ok(fresh)["id"] != session_id  # a new anonymous session, as for a bad cookie
    assert fresh.json()["data"]["signins"] == []
    assert "x-development-session" not in fresh.headers


# Cookie name and token issuer -----------------------------------------------------------------


@pytest.mark.parametrize("configured", ["session_id", "__session"])
def test_the_token_route_takes_the_cookie_under_either_name(
    build_stack: Any, configured: str
) -> None:
    stack: Stack = build_stack(public_url=PUBLIC, cookie_name=configured)
    browser = stack.browser
    form = {"email": BOB[0], "password": BOB[1], "strategy": "plain_email"}
    signed = browser.send("POST", "/auth/signin", data=form)
    ok(signed)
    assert signed.headers["set-cookie"].startswith(f"{configured}=")
    token = browser.client.cookies.get(configured)
    assert token
    keys = jwks_keys(browser)
    for name in ("session_id", "__session"):
        answer = browser.send("GET", "/session/token", cookie_header=f"{name}={token}")
        claims = verified_claims(ok(answer)["token"], keys, PUBLIC)  # iss: the public URL
        assert claims["sub"] == BOB[2]
