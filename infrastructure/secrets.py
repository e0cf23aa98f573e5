"""Server secrets: generated on first start, kept in the store (never in events or the repo).

The first process to start wins the race: ``INSERT … ON CONFLICT DO NOTHING`` then a read,
so concurrent workers agree on one value.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from infrastructure.sql import SqlDatabase


class ServerSecrets:
    """Named random secrets stored in the ``server_secrets`` table."""

    def __init__(self, db: SqlDatabase) -> None:
        self._db = db
        self._table = db.table("server_secrets")

    def get_or_create(self, name: str, nbytes: int = 32) -> bytes:
        """The secret called ``name``, generating it the first time it is asked for."""
        with self._db.transaction() as cursor:
            cursor.execute(
                f"INSERT INTO {self._table} (name, value) VALUES (%(name)s, %(value)s) "
                "ON CONFLICT (name) DO NOTHING",
                {"name": name, "value": secrets.token_hex(nbytes)},
            )
        with self._db.transaction(commit=False) as cursor:
            cursor.execute(f"SELECT value FROM {self._table} WHERE name = %(name)s", {"name": name})
            row = cursor.fetchone()
        assert row is not None
        return bytes.fromhex(str(row["value"]))


class HmacDigester:
    """HMAC-SHA256 with a server key; ``purpose`` separates the uses of one key."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def digest(self, purpose: str, value: str) -> bytes:
        """A keyed digest of ``value`` for ``purpose``."""
        message = purpose.encode() + b"\x00" + value.encode("utf-8", "surrogatepass")
        return hmac.new(self._key, message, hashlib.sha256).digest()
