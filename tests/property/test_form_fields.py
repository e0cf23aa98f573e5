"""Arbitrary text in every form field, over real HTTP, on each durable store.

Hypothesis throws text at one field of one form at a time (the other fields valid): any
Unicode, control characters (NUL first), lone surrogates (sent as the bytes Python's
``surrogatepass`` makes, which form decoding turns into U+FFFD), bidi controls and RTL
marks, and a megabyte. The service never answers 5xx; a value holding a control character
is always the field's 400 and never stored; whatever it stored is free of them.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote_plus

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.app import create_app
from tests.auth.store_dump import store_rows
from tests.helpers import ALICE, at_most, services_for
from tests.serving import serving

FORMS: dict[str, dict[str, str]] = {
    "/auth/signin plain_email": {"strategy": "plain_email", "email": ALICE[0], "password": "x"},
    "/auth/signin email_otp": {"strategy": "email_otp", "email": ALICE[0]},
    "/auth/signup": {
        "first_name": "Ann",
        "last_name": "Lee",
        "email": "ann@example.com",
        "password": "a-long-password",
    },
    "/auth/attempt-verification": {"verification_code": "123456"},
}
TARGETS = [(form, name) for form, fields in FORMS.items() for name in fields]
SPECIAL = [
    "a\x00@x.io",
    "\x00",
    "ann\x00@example.com",
    "\ud800",
    "x\udfffy@example.com",
    "\u202eevil@example.com",
    "\u200fAnn\u200f",
    "\u2067name\u2069",
    " MiXeD@Example.COM ",
    "z" * 1_000_000,
    "a@" + "b" * 300 + ".io",
]
TEXT = st.one_of(
    st.sampled_from(SPECIAL),
    st.text(
        st.one_of(st.characters(), st.characters(categories=["Cc", "Cs", "Cf", "Zs"])),
        max_size=40,
    ),
)


def encode(fields: dict[str, str]) -> bytes:
    """A urlencoded body as a browser would send it; surrogates as their (invalid) bytes."""
    return "&".join(
        f"{quote_plus(k)}={quote_plus(v.encode('utf-8', 'surrogatepass'))}"
        for k, v in fields.items()
    ).encode()


BIDI_CONTROLS = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def forbidden(value: str) -> bool:
    """Whether the value holds something no field accepts: Unicode controls, surrogates,
    bidi embedding/override/isolate controls."""
    return any(c in BIDI_CONTROLS or unicodedata.category(c) in ("Cc", "Cs") for c in value)


@dataclass
class Served:
    url: str
    http: httpx.Client
    attempt: str
    refused: set[str] = field(default_factory=set)


@pytest.fixture
def served(durable_database_url: str) -> Iterator[Served]:
    settings_: dict[str, Any] = {"rate_limits": False, "cookie_secure": False}
    with (
        services_for(durable_database_url, **settings_) as services,
        serving(create_app(services=services)) as base,
        httpx.Client(base_url=base, timeout=60) as http,
    ):
        started = http.post("/auth/signin", data={"strategy": "email_otp", "email": ALICE[0]})
        attempt = started.json()["data"]["signin_attempts"][-1]["id"]
        yield Served(durable_database_url, http, attempt)


def test_no_text_in_any_field_is_a_5xx_or_stored_when_refused(served: Served) -> None:
    @settings(
        max_examples=at_most(60),
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(target=st.sampled_from(TARGETS), value=TEXT)
    def throw(target: tuple[str, str], value: str) -> None:
        form, name = target
        path = form.split(" ")[0]
        fields = {**FORMS[form], name: value}
        params = {"attempt_identifier": served.attempt} if "verification" in path else {}
        response = served.http.post(
            path,
            params=params,
            content=encode(fields),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert response.status_code < 500, (form, name, repr(value)[:80], response.text)
        body = response.json()
        assert body["status"] == response.status_code
        if response.status_code >= 400:
            assert body["errors"]
            assert body["data"] is None
        if forbidden(value.encode("utf-8", "surrogatepass").decode("utf-8", "replace")):
            # A control character is the field's 400, whatever the route would do next
            assert response.status_code == 400, (form, name, repr(value)[:80])
            assert body["errors"][0]["code"] == "INVALID_REQUEST"
            assert name in body["message"]
            served.refused.add(value)

    throw()
    # Then nothing refused was kept, and what was kept holds no control character
    stored = [str(v) for table, row in store_rows(served.url) for v in row
              if table.startswith(("directory_", "pending_")) and isinstance(v, str)]  # fmt: skip
    assert not [text for text in stored if forbidden(text)]
    kept = "\n".join(stored)
    assert not [value for value in served.refused if value in kept]
