"""Checks of the wire format: the envelope, ids, timestamps and the ``session_id`` cookie."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import httpx

from tests.e2e.harness import COOKIE, Json

ENVELOPE_KEYS = {"status", "message", "data", "session", "errors"}
SESSION_INFO_KEYS = {"id", "created_at", "updated_at"}
SESSION_KEYS = {
    *SESSION_INFO_KEYS,
    "signin_attempts",
    "signins",
    "signup_attempts",
    "active_signin_id",
    "active_signin",
}
RFC3339_UTC = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z")
DECIMAL_ID = re.compile(r"[1-9][0-9]*")
UPPER_SNAKE = re.compile(r"[A-Z]+(_[A-Z]+)*")


def assert_id(value: object) -> None:
    """A decimal string of an unsigned 64-bit integer, without sign or leading zero."""
    assert isinstance(value, str), f"id {value!r} is not a string"
    assert DECIMAL_ID.fullmatch(value), f"id {value!r} is not a canonical decimal"
    assert int(value) < 2**64, f"id {value!r} does not fit in 64 bits"


def assert_timestamp(value: object) -> None:
    """An RFC 3339 timestamp in UTC, ending in ``Z``."""
    assert isinstance(value, str), f"timestamp {value!r} is not a string"
    assert RFC3339_UTC.fullmatch(value), f"timestamp {value!r} is not RFC 3339 UTC with a Z"
    datetime.fromisoformat(value)  # a real date and time, not just the right digits


def fields_of(document: object) -> Iterator[tuple[str, object]]:
    """Every key and value of a JSON document, at any depth."""
    if isinstance(document, dict):
        for key, value in document.items():
            yield key, value
            yield from fields_of(value)
    elif isinstance(document, list):
        for item in document:
            yield from fields_of(item)


def assert_wire_formats(document: object) -> int:
    """Every ``*id`` is a decimal id and every ``*_at`` a timestamp; how many were checked."""
    checked = 0
    for key, value in fields_of(document):
        if value is None or isinstance(value, dict | list):
            continue
        if key == "id" or key.endswith("_id"):
            assert_id(value)
            checked += 1
        elif key.endswith("_at"):
            assert_timestamp(value)
            checked += 1
    return checked


def envelope(response: httpx.Response, status: int) -> Json:
    """The body, checked to be the envelope with that status, sent uncached."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers.get("cache-control") == "no-store"
    body: Json = response.json()
    assert set(body) == ENVELOPE_KEYS, body
    assert body["status"] == status
    assert isinstance(body["message"], str)
    session = body["session"]
    if session is not None:
        assert set(session) == SESSION_INFO_KEYS, session
        assert_wire_formats(session)
    return body


def ok(response: httpx.Response) -> Json:
    """The ``data`` of a success envelope; its ``session`` is the document's short form."""
    body = envelope(response, 200)
    assert body["message"] == ""
    assert body["errors"] is None
    data: Json = body["data"]
    assert isinstance(data, dict)
    if "signins" in data:
        assert body["session"] == {k: data[k] for k in SESSION_INFO_KEYS}
    return data


def refused(response: httpx.Response, status: int) -> str:
    """The error code of a failure envelope with that status."""
    body = envelope(response, status)
    assert body["data"] is None
    errors = body["errors"]
    assert isinstance(errors, list)
    assert errors, "a failure must name at least one error"
    for error in errors:
        assert set(error) == {"code", "message"}, error
        assert UPPER_SNAKE.fullmatch(error["code"]), error
        assert isinstance(error["message"], str)
        assert error["message"]
    code: str = errors[0]["code"]
    return code


@dataclass(frozen=True)
class SetCookie:
    """One ``Set-Cookie`` header: the value and its attributes (names in lower case)."""

    value: str
    attributes: dict[str, str]
    flags: frozenset[str]


def session_cookie(response: httpx.Response) -> SetCookie | None:
    """The ``session_id`` cookie the response sets, if any (at most one)."""
    found: list[SetCookie] = []
    for header in response.headers.get_list("set-cookie"):
        first, *rest = (part.strip() for part in header.split(";"))
        name, _, value = first.partition("=")
        if name != COOKIE:
            continue
        attributes: dict[str, str] = {}
        flags: set[str] = set()
        for part in rest:
            key, sep, attribute = part.partition("=")
            if sep:
                attributes[key.lower()] = attribute
            else:
                flags.add(key.lower())
        found.append(SetCookie(value, attributes, frozenset(flags)))
    assert len(found) <= 1, f"{COOKIE} set more than once: {found}"
    return found[0] if found else None


def new_token(response: httpx.Response) -> str:
    """The token of the ``session_id`` cookie the response must set."""
    cookie = session_cookie(response)
    assert cookie is not None, "expected a new session_id cookie"
    return cookie.value


def token_bits(token: str) -> int:
    """A lower bound of the randomness a token can carry, from its alphabet and length."""
    if re.fullmatch(r"[0-9a-f]+", token):
        return 4 * len(token)
    assert re.fullmatch(r"[A-Za-z0-9_\-]+", token), f"unexpected token alphabet: {token!r}"
    return 6 * len(token)


def malformed_spellings(live_id: str) -> dict[str, str]:
    """Malformed ids; most are spellings that a lenient parser (``int()``) reads as ``live_id``."""
    return {
        "leading space": f" {live_id}",
        "trailing space": f"{live_id} ",
        "plus sign": f"+{live_id}",
        "leading zero": f"0{live_id}",
        "underscore": f"{live_id[:3]}_{live_id[3:]}",
        "fullwidth digits": live_id.translate({ord(d): 0xFF10 + int(d) for d in "0123456789"}),
        "wraps past 2**64": str(2**64 + int(live_id)),
        "minus": f"-{live_id}",
        "2**64": str(2**64),
        "0": "0",
        "01": "01",
        "fullwidth one": "\uff11",
        "1_0": "1_0",
        "letters": "abc",
        "float": f"{live_id}.0",
        "empty": "",
    }
