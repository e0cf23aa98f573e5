"""Password hashing and checking with Argon2id (argon2-cffi)."""

from __future__ import annotations

import secrets

from argon2 import DEFAULT_MEMORY_COST, DEFAULT_PARALLELISM, DEFAULT_TIME_COST, PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError


class Argon2Passwords:
    """Hashes passwords and checks them against stored hashes; a ``PasswordVerifier``.

    The cost parameters default to argon2-cffi's; tests may pass cheaper ones. Hashes made
    with other parameters still verify, since each hash records its own.
    """

    def __init__(
        self,
        *,
        time_cost: int = DEFAULT_TIME_COST,
        memory_cost: int = DEFAULT_MEMORY_COST,
        parallelism: int = DEFAULT_PARALLELISM,
    ) -> None:
        self._hasher = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism
        )
        # Checking a password of an unknown user against this hash costs what checking a
        # real one costs, so response times do not reveal which emails have accounts.
        self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(32))

    def hash(self, password: str) -> str:
        """A new salted Argon2id hash of ``password``."""
        return self._hasher.hash(password)

    def verify(self, password_hash: str | None, password: str) -> bool:
        """True only if ``password`` matches; with no hash, burns the same time and fails."""
        if password_hash is None:
            self.matches(self._dummy_hash, password)
            return False
        return self.matches(password_hash, password)

    def matches(self, password_hash: str, password: str) -> bool:
        """True if ``password`` matches ``password_hash``; False for a mismatch or a bad hash."""
        try:
            return self._hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False
