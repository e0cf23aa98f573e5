"""Endpoint signing secrets: generated here, sealed at rest, and used to sign deliveries.

A secret is ``whsec_`` + base64 of 32 random bytes (the Standard Webhooks form). The store
holds it only sealed with AES-256-GCM under a key derived from ``SESSION_LEDGER_WEBHOOK_KEY``,
which lives outside the database, with the endpoint id and slot as associated data (a sealed
secret copied to another row or slot does not open): a database dump alone does not reveal
it. Signatures are made by the ``standardwebhooks`` package, one per live secret.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Sequence
from datetime import datetime

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from standardwebhooks.webhooks import Webhook

from application.errors import WebhooksNotConfigured

PREFIX = "whsec_"
_VERSION = "v1:"


class SecretUnreadable(RuntimeError):
    """Raised when a sealed secret does not open with the configured key."""


def new_secret() -> str:
    """A fresh signing secret, ``whsec_…``."""
    return PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


class SecretBox:
    """Seals and opens endpoint secrets with a key kept outside the store."""

    def __init__(self, key: str | None) -> None:
        self._aead = (
            AESGCM(hashlib.sha256(b"session-ledger webhook secrets\x00" + key.encode()).digest())
            if key
            else None
        )

    @property
    def configured(self) -> bool:
        """True when a key is set."""
        return self._aead is not None

    def _require(self) -> AESGCM:
        if self._aead is None:
            raise WebhooksNotConfigured
        return self._aead

    def seal(self, secret: str, endpoint_id: int, slot: str) -> str:
        """The stored form of ``secret`` for an endpoint's ``slot`` (current or previous)."""
        nonce = secrets.token_bytes(12)
        sealed = self._require().encrypt(nonce, secret.encode(), f"{endpoint_id}:{slot}".encode())
        return _VERSION + base64.b64encode(nonce + sealed).decode()

    def open(self, stored: str, endpoint_id: int, slot: str) -> str:
        """The secret a :meth:`seal` result holds."""
        raw = base64.b64decode(stored.removeprefix(_VERSION))
        try:
            plain = self._require().decrypt(raw[:12], raw[12:], f"{endpoint_id}:{slot}".encode())
        except InvalidTag:
            raise SecretUnreadable(f"endpoint {endpoint_id}: wrong webhook key") from None
        return plain.decode()


def signature_header(
    secrets_: Sequence[str], message_id: str, timestamp: datetime, body: bytes
) -> str:
    """``webhook-signature``: one ``v1,…`` per secret, space-separated."""
    return " ".join(Webhook(s).sign(message_id, timestamp, body) for s in secrets_)
