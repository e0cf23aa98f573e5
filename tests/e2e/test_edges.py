"""Smaller edges: HEAD /session, sign-in trimming the email as sign-up does, and requests
uvicorn itself refuses answering in the envelope with a request id."""

from __future__ import annotations

import json
import socket
from urllib.parse import urlsplit

from api.app import create_app
from api.rejections import EnvelopeRejections
from tests.e2e.harness import Browser, Stack
from tests.e2e.wire import ok, session_cookie
from tests.helpers import ALICE
from tests.serving import serving


def test_head_session_answers_like_get_without_a_body(browser: Browser) -> None:
    browser.signed_in(ALICE)

    head = browser.send("HEAD", "/session")

    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["X-Request-Id"]
    assert head.headers["content-type"] == "application/json"


def test_sign_in_trims_and_lowercases_the_email_as_sign_up_does(browser: Browser) -> None:
    form = {"email": f"  {ALICE[0].upper()}  ", "password": ALICE[1], "strategy": "plain_email"}

    response = browser.send("POST", "/auth/signin", data=form)

    data = ok(response)
    assert session_cookie(response) is not None
    assert [s["user_id"] for s in data["signins"]] == [ALICE[2]]


def _raw(base: str, request: bytes) -> bytes:
    parts = urlsplit(base)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as connection:
        connection.sendall(request)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    return answer


def test_a_request_uvicorn_cannot_parse_is_an_enveloped_400_with_an_id(stack: Stack) -> None:
    with serving(create_app(services=stack.services), http=EnvelopeRejections) as base:
        for request in (
            b"GET /session HTTP/1.1\r\nHost: x\r\nBad header line\r\n\r\n",
            b"NOT-HTTP\r\n\r\n",
            b"GET /session HTTP/1.1\r\nHost: x\r\nX-A: \x00\r\n\r\n",
        ):
            answer = _raw(base, request)

            head, _, body = answer.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])}
            assert lines[0] == "HTTP/1.1 400 Bad Request", answer
            assert headers["content-type"] == "application/json"
            assert len(headers["x-request-id"]) >= 8
            envelope = json.loads(body)
            assert envelope["status"] == 400
            assert envelope["data"] is None
            assert [e["code"] for e in envelope["errors"]] == ["INVALID_REQUEST"]
