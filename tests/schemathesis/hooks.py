"""Schemathesis hooks: every generated request carries a fresh signed-in cookie.

A generated request may sign the session out or replace its cookie, so the cookie is
renewed every second: a new session with Alice and Bob signed in, over the served
instance's own /auth/signin (the base URL comes from ``SESSION_LEDGER_ST_BASE_URL``).
"""

from __future__ import annotations

import os
from typing import Any

import httpx
import schemathesis

BASE = os.environ.get("SESSION_LEDGER_ST_BASE_URL", "http://127.0.0.1:8000")
USERS = [("alice@example.com", "alice-demo-password"), ("bob@example.com", "bob-demo-password")]


@schemathesis.auth(refresh_interval=1)
class SignedInCookie:
    """A ``session_id`` cookie of a session with two live sign-ins."""

    def get(self, case: schemathesis.Case[Any], context: schemathesis.AuthContext) -> str:
        """Sign Alice and Bob in to a new session; its cookie."""
        with httpx.Client(base_url=BASE, timeout=30) as http:
            for email, password in USERS:
                form = {"strategy": "plain_email", "email": email, "password": password}
                http.post("/auth/signin", data=form).raise_for_status()
            return str(http.cookies["session_id"])

    def set(
        self, case: schemathesis.Case[Any], data: str, context: schemathesis.AuthContext
    ) -> None:
        """Send the cookie with the generated request."""
        case.headers["Cookie"] = f"session_id={data}"
