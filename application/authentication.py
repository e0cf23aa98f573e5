"""How accounts enter a session: password, emailed one-time code, and sign-up.

Unknown emails travel the same path as known ones (an attempt is recorded, a code is
"sent" nowhere), so responses never tell whether an account exists. Codes exist only in
the email and, as a keyed hash, in the VerificationPrepared event; passwords only as
argon2 hashes (and, for a pending sign-up, outside the event log until verified).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from eventsourcing.domain import Aggregate

from application.ports import (
    AccountCreator,
    Mailer,
    PasswordHasher,
    PendingSignUp,
    PendingSignUps,
    RateLimiter,
    RequestContext,
)
from application.sessions import CommandResult, SessionsApp
from domain.errors import (
    EmailTaken,
    InvalidAttempt,
    InvalidCode,
    InvalidCredentials,
    InvalidRequest,
    RateLimited,
    SessionLedgerError,
    UnsupportedStrategy,
    WeakPassword,
)
from domain.ids import parse_id
from domain.session import Session
from domain.values import AttemptKind, SignInMethod, normalise_email

CODE_DIGITS = 6
DISCARDED = "nobody@invalid"  # the address on an unknown email's discarded code
MIN_PASSWORD_LENGTH = 8
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_CODE = re.compile(r"[0-9]{6}")


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


Outcome = tuple[list[Aggregate], SessionLedgerError | None]


class Authenticator:
    """Sign-in by password or emailed code, and sign-up, on top of the sessions app."""

    def __init__(
        self,
        sessions: SessionsApp,
        *,
        limiter: RateLimiter,
        mailer: Mailer,
        hasher: PasswordHasher,
        pending: PendingSignUps,
        accounts: AccountCreator,
        policy: AuthPolicy,
    ) -> None:
        self.sessions = sessions
        self.limiter = limiter
        self.mailer = mailer
        self.hasher = hasher
        self.pending = pending
        self.accounts = accounts
        self.policy = policy

    def _digest(self, email: str) -> str:
        return self.sessions.digester.digest("sign-in-identifier", normalise_email(email)).hex()

    def _limit(self, kind: str, key: str, limit: int) -> None:
        self.limiter.hit(f"{kind}:{key}", limit, self.policy.window_seconds)

    def _limit_sign_in(self, context: RequestContext) -> None:
        self._limit("sign-in-address", context.client_address, self.policy.sign_ins_per_address)

    def _failure_keys(self, email: str, context: RequestContext) -> tuple[str, str]:
        account = self._digest(email)
        return f"failed-pair:{account}:{context.client_address}", f"failed-account:{account}"

    def _check_guessing(self, email: str, context: RequestContext) -> None:
        """Refuse a password try that would continue guessing at an account: from an address
        with too many failures for it, or, while the account is under sustained guessing,
        from an address that failed for it before its cool-down ended. An address with no
        failures for the account always gets its try (the owner is never locked out)."""
        policy, window = self.policy, self.policy.window_seconds
        pair_key, account_key = self._failure_keys(email, context)
        pair = self.limiter.recent(pair_key, window)
        if pair.count == 0:
            return
        if pair.count >= policy.failures_per_account_and_address:
            raise RateLimited(retry_after=self.limiter.retry_after(pair.oldest + window))
        account = self.limiter.recent(account_key, window)
        excess = account.count - policy.account_failures_before_cool_down
        if excess >= 0:
            until = account.newest + min(2 ** min(excess + 1, 30), policy.cool_down_max_seconds)
            if until > self.sessions.clock.now().timestamp():
                raise RateLimited(retry_after=self.limiter.retry_after(until))

    def _record_failure(self, email: str, context: RequestContext) -> None:
        for key in self._failure_keys(email, context):
            self.limiter.record(key)

    # Password ---------------------------------------------------------------------------

    def sign_in_with_password(
        self,
        session_id: int,
        email: str,
        password: str,
        old_token: str | None,
        context: RequestContext = RequestContext(),  # noqa: B008 - immutable
    ) -> CommandResult:
        """Verify an email and password and, if they match, add an active sign-in."""
        email = normalise_email(email)
        self._limit_sign_in(context)
        self._check_guessing(email, context)
        app = self.sessions
        found = app.directory.find_user_by_email(email)
        verified = app.passwords.verify(found.password_hash if found else None, password)
        user_id = found.profile.id if found and verified else None
        if user_id is None:
            self._record_failure(email, context)
        digest = self._digest(email)
        issued: list[str] = []

        def action(session: Session, now: datetime) -> Outcome:
            issued.clear()
            attempt_id = app.ids.next_id()
            session.attempt_sign_in(
                attempt_id, SignInMethod.PLAIN_EMAIL, user_id, digest,
                now + app.policy.attempt_lifetime, app.policy.max_sign_ins, now,
            )  # fmt: skip
            if user_id is None:
                session.reject_credentials(attempt_id, now)
                return [], InvalidCredentials()
            token, changed = app.add_sign_in(session, attempt_id, user_id, old_token, now)
            issued.append(token)
            return changed, None

        result = app.run(session_id, action)
        return CommandResult(result.document, issued[0] if issued else None)

    # Emailed codes ----------------------------------------------------------------------

    def start_email_code_sign_in(
        self,
        session_id: int,
        email: str,
        context: RequestContext = RequestContext(),  # noqa: B008 - immutable
    ) -> CommandResult:
        """Start an attempt that waits for an emailed code (same answer for unknown emails)."""
        email = normalise_email(email)
        self._limit_sign_in(context)
        app = self.sessions
        found = app.directory.find_user_by_email(email)
        user_id = found.profile.id if found else None
        digest = self._digest(email)

        def action(session: Session, now: datetime) -> Outcome:
            session.attempt_sign_in(
                app.ids.next_id(), SignInMethod.EMAIL_OTP, user_id, digest,
                now + app.policy.attempt_lifetime, app.policy.max_sign_ins, now,
            )  # fmt: skip
            return [], None

        return app.run(session_id, action)

    def prepare_verification(
        self,
        session_id: int,
        raw_attempt_id: str | None,
        strategy: str | None,
        context: RequestContext = RequestContext(),  # noqa: B008 - immutable
    ) -> CommandResult:
        """Send a new one-time code for an open attempt; the previous code stops working."""
        if strategy not in (None, "", SignInMethod.EMAIL_OTP):
            raise UnsupportedStrategy
        attempt_id = parse_id(raw_attempt_id)
        if attempt_id is None:
            raise InvalidAttempt
        app = self.sessions
        self._limit("code-address", context.client_address, self.policy.codes_per_address)
        code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
        recipient: list[tuple[str | None, str]] = []
        counted: list[bool] = []

        def action(session: Session, now: datetime) -> Outcome:
            recipient.clear()
            session.open_attempt(attempt_id, now)
            if not counted:  # only the owner's session counts against the attempt's limit
                counted.append(True)
                self._limit("code-attempt", str(attempt_id), self.policy.codes_per_attempt)
            attempt = session.prepare_verification(
                attempt_id,
                self._code_digest(attempt_id, code),
                now + self.policy.code_lifetime,
                now,
            )
            # Looked up before the save: once the new code is committed, nothing may fail
            # the answer.
            to = self._recipient(attempt.id, attempt.user_id or 0, attempt.kind)
            recipient.append((to, attempt.kind))
            return [], None

        result = app.run(session_id, action)
        to, kind = recipient[0]
        # An unknown email takes the same path: its message is built, queued and discarded,
        # so neither the answer nor its timing tells whether the account exists.
        minutes = int(self.policy.code_lifetime.total_seconds() // 60)
        purpose = "sign-up" if kind == AttemptKind.SIGN_UP else "sign-in"
        self.mailer.send_code(to or DISCARDED, code, purpose, minutes, deliver=to is not None)
        return result

    def _recipient(self, attempt_id: int, user_id: int, kind: str) -> str | None:
        if kind == AttemptKind.SIGN_UP:
            pending = self.pending.get(attempt_id)
            return pending.email if pending else None
        profile = self.sessions.directory.user_profiles([user_id]).get(user_id)
        return profile.email if profile else None

    def _code_digest(self, attempt_id: int | None, code: str) -> str:
        return self.sessions.digester.digest(f"one-time-code:{attempt_id}", code).hex()

    def attempt_verification(
        self,
        session_id: int,
        raw_attempt_id: str | None,
        code: str | None,
        old_token: str | None,
        context: RequestContext = RequestContext(),  # noqa: B008 - immutable
    ) -> CommandResult:
        """Check a one-time code; a right one completes the attempt with an active sign-in."""
        attempt_id = parse_id(raw_attempt_id)
        self._limit("verify-address", context.client_address, self.policy.verifications_per_address)
        if code is None or _CODE.fullmatch(code) is None:
            raise InvalidCode
        app = self.sessions
        digest = self._code_digest(attempt_id, code)
        issued: list[str] = []

        def action(session: Session, now: datetime) -> Outcome:
            issued.clear()
            verdict = session.verify_code(attempt_id, digest, now)
            if not verdict.accepted:
                return [], InvalidCode()  # the failure is recorded; save it, then answer
            attempt = verdict.attempt
            if attempt.user_id is None:
                return [], InvalidCode()
            if attempt.kind == AttemptKind.SIGN_UP:
                self._create_account(attempt.id, attempt.user_id)
                # Cleaned up before the save: after it, nothing may fail the answer (a
                # retry finds the account made and needs the pending row no more).
                self.pending.delete(attempt.id)
                session.complete_sign_up(attempt.id, now)
            token, changed = app.add_sign_in(session, attempt.id, attempt.user_id, old_token, now)
            issued.append(token)
            return changed, None

        result = app.run(session_id, action)
        return CommandResult(result.document, issued[0] if issued else None)

    def _create_account(self, attempt_id: int, user_id: int) -> None:
        """Create the verified sign-up's user, once (a retried command finds it made)."""
        if self.sessions.directory.user_profiles([user_id]):
            return
        pending = self.pending.get(attempt_id)
        if pending is None:
            raise InvalidCode
        self.accounts.create_user(
            user_id, pending.email, pending.first_name, pending.last_name, pending.password_hash
        )

    # Sign-up ----------------------------------------------------------------------------

    def sign_up(
        self,
        session_id: int,
        fields: dict[str, str | None],
        context: RequestContext = RequestContext(),  # noqa: B008 - immutable
    ) -> CommandResult:
        """Start creating an account; it exists once its email is verified with a code."""
        values = {name: (fields.get(name) or "").strip() for name in _SIGN_UP_FIELDS}
        for name in _SIGN_UP_FIELDS:
            raw = fields.get(name)
            if raw is None or raw.strip() == "":
                raise InvalidRequest(f"The field '{name}' is required.")
            if len(raw) > 256:
                raise InvalidRequest(f"The field '{name}' is too long.")
        password = fields.get("password") or ""
        if _EMAIL.fullmatch(values["email"]) is None:
            raise InvalidRequest("The field 'email' is not a valid email address.")
        if len(password) < MIN_PASSWORD_LENGTH:
            raise WeakPassword
        self._limit("sign-up-address", context.client_address, self.policy.sign_ups_per_address)
        app = self.sessions
        email = normalise_email(values["email"])
        if app.directory.find_user_by_email(email) is not None:
            raise EmailTaken
        attempt_id, user_id = app.ids.next_id(), app.ids.next_id()
        expires_at = app.clock.now() + app.policy.attempt_lifetime
        self.pending.put(
            PendingSignUp(
                attempt_id, user_id, email, values["first_name"], values["last_name"],
                self.hasher.hash(password),
            ),
            expires_at,
        )  # fmt: skip

        def action(session: Session, now: datetime) -> Outcome:
            session.attempt_sign_up(attempt_id, user_id, self._digest(email), expires_at, now)
            return [], None

        return app.run(session_id, action)


_SIGN_UP_FIELDS = ("first_name", "last_name", "email", "password")
