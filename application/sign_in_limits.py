"""Rate limits of sign-in and sign-up, and the brake on guessing an account's password."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from application.errors import RateLimited
from application.ports import Clock, RateLimiter, RequestContext


@dataclass(frozen=True)
class AuthPolicy:
    """Code lifetime and rate limits (hits per sliding window, per key)."""

    code_lifetime: timedelta = timedelta(minutes=10)
    window_seconds: int = 600
    # Per address: generous, since offices and carriers put many people behind one address.
    sign_ins_per_address: int = 300
    # Wrong passwords for one account from one address, before that pair is refused.
    failures_per_account_and_address: int = 10
    # Wrong passwords for one account from all addresses before its cool-down starts: then
    # an address that already failed for it waits 2, 4, 8… seconds (up to the maximum)
    # after the account's last failure; an address with no failures is never held back.
    account_failures_before_cool_down: int = 20
    cool_down_max_seconds: int = 900
    codes_per_attempt: int = 5
    codes_per_address: int = 100
    verifications_per_address: int = 300
    sign_ups_per_address: int = 50


class SignInLimits:
    """Counts hits per key in a sliding window (via the injected RateLimiter)."""

    def __init__(
        self,
        limiter: RateLimiter,
        clock: Clock,
        policy: AuthPolicy,
        identify: Callable[[str], str],
    ) -> None:
        self._limiter = limiter
        self._clock = clock
        self._policy = policy
        self._identify = identify  # an email's keyed digest: keys name no account

    def hit(self, kind: str, key: str, limit: int) -> None:
        """Count one hit of ``kind`` for ``key``; RateLimited past ``limit`` in the window."""
        self._limiter.hit(f"{kind}:{key}", limit, self._policy.window_seconds)

    def sign_in(self, context: RequestContext) -> None:
        """Count a sign-in try from the caller's address."""
        self.hit("sign-in-address", context.client_address, self._policy.sign_ins_per_address)

    def _failure_keys(self, email: str, context: RequestContext) -> tuple[str, str]:
        account = self._identify(email)
        return f"failed-pair:{account}:{context.client_address}", f"failed-account:{account}"

    def check_guessing(self, email: str, context: RequestContext) -> None:
        """Refuse a password try that would continue guessing at an account: from an address
        with too many failures for it, or, while the account is under sustained guessing,
        from an address that failed for it before its cool-down ended. An address with no
        failures for the account always gets its try (the owner is never locked out)."""
        policy, window = self._policy, self._policy.window_seconds
        pair_key, account_key = self._failure_keys(email, context)
        pair = self._limiter.recent(pair_key, window)
        if pair.count == 0:
            return
        if pair.count >= policy.failures_per_account_and_address:
            raise RateLimited(retry_after=self._limiter.retry_after(pair.oldest + window))
        account = self._limiter.recent(account_key, window)
        excess = account.count - policy.account_failures_before_cool_down
        if excess >= 0:
            until = account.newest + min(2 ** min(excess + 1, 30), policy.cool_down_max_seconds)
            if until > self._clock.now().timestamp():
                raise RateLimited(retry_after=self._limiter.retry_after(until))

    def record_failure(self, email: str, context: RequestContext) -> None:
        """Remember a wrong password for the account, from the caller's address."""
        for key in self._failure_keys(email, context):
            self._limiter.record(key)
