"""What every way into a session shares: the authenticator's collaborators, its rate limits,
and completing an attempt with a new active sign-in and cookie token.

The ways themselves: password and sign-up in :mod:`application.authentication`, emailed
codes in :mod:`application.email_codes`.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from application.cookie_tokens import CookieTokens
from application.policy import SessionPolicy
from application.ports import (
    AccountCreator,
    Clock,
    Digester,
    Directory,
    IdGenerator,
    Mailer,
    PasswordHasher,
    PasswordVerifier,
    PendingSignUps,
    RateLimiter,
)
from application.sign_in_limits import AuthPolicy, SignInLimits
from application.unit_of_work import Changed, UnitOfWork
from application.user_contexts import UserContexts
from domain.session import Session
from domain.values import normalise_email

CODE_DIGITS = 6


@dataclass(frozen=True)
class SignedIn:
    """What a completed attempt decided: the session's new cookie token."""

    token: str


def random_code() -> str:
    """A new one-time code: six random digits."""
    return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


class AuthenticatorBase:
    """The collaborators of the sign-in and sign-up commands, and what they share."""

    def __init__(
        self,
        work: UnitOfWork,
        *,
        tokens: CookieTokens,
        contexts: UserContexts,
        directory: Directory,
        passwords: PasswordVerifier,
        digester: Digester,
        ids: IdGenerator,
        clock: Clock,
        session_policy: SessionPolicy,
        limiter: RateLimiter,
        mailer: Mailer,
        hasher: PasswordHasher,
        pending: PendingSignUps,
        accounts: AccountCreator,
        policy: AuthPolicy,
        new_code: Callable[[], str] = random_code,
    ) -> None:
        self.work = work
        self.tokens = tokens
        self.contexts = contexts
        self.directory = directory
        self.passwords = passwords
        self.digester = digester
        self.ids = ids
        self.clock = clock
        self.session_policy = session_policy
        self.limiter = limiter
        self.mailer = mailer
        self.hasher = hasher
        self.pending = pending
        self.accounts = accounts
        self.policy = policy
        self.new_code = new_code  # injected by tests that must know the next code
        self.limits = SignInLimits(limiter, clock, policy, self._digest)

    def _digest(self, email: str) -> str:
        return self.digester.digest("sign-in-identifier", normalise_email(email)).hex()

    def _limit(self, kind: str, key: str, limit: int) -> None:
        self.limits.hit(kind, key, limit)

    def _add_sign_in(
        self, session: Session, attempt_id: int, user_id: int, old_token: str | None, now: datetime
    ) -> Changed[SignedIn]:
        """Complete an attempt for ``user_id``: a new active sign-in and a new cookie token."""
        policy = self.session_policy
        session.complete_sign_in(
            attempt_id,
            self.ids.next_id(),
            user_id,
            now + policy.sign_in_lifetime,
            self.contexts.starting_context(user_id),
            policy.max_sign_ins,
            now,
        )
        token, changed = self.tokens.rotate(session, old_token, now)
        return Changed(SignedIn(token), changed)
