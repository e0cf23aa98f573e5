"""How accounts enter a session: password, emailed one-time code, and sign-up.

Unknown emails travel the same path as known ones (an attempt is recorded, a code is
"sent" nowhere), so responses never tell whether an account exists. Codes exist only in
the email and, as a keyed hash, in the VerificationPrepared event; passwords only as
argon2 hashes (and, for a pending sign-up, outside the event log until verified).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from application.cookie_tokens import CookieTokens
from application.errors import UnsupportedStrategy
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
    PendingSignUp,
    PendingSignUps,
    RateLimiter,
    RequestContext,
)
from application.session_commands import CommandResult
from application.sign_in_limits import AuthPolicy, SignInLimits
from application.unit_of_work import Changed, CommandScope, Decision, Refused, UnitOfWork
from application.user_contexts import UserContexts
from domain.errors import (
    EmailTaken,
    InvalidAttempt,
    InvalidCode,
    InvalidCredentials,
    WeakPassword,
)
from domain.ids import parse_id
from domain.session import Session
from domain.values import AttemptKind, SignInMethod, normalise_email

CODE_DIGITS = 6
DISCARDED = "nobody@invalid"  # the address on an unknown email's discarded code
MIN_PASSWORD_LENGTH = 8
_CODE = re.compile(r"[0-9]{6}")


@dataclass(frozen=True)
class SignedIn:
    """What a completed attempt decided: the session's new cookie token."""

    token: str


@dataclass(frozen=True)
class CodeSent:
    """Where the new one-time code goes (None: an unknown email) and for which purpose."""

    to: str | None
    kind: str


def random_code() -> str:
    """A new one-time code: six random digits."""
    return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


class Authenticator:
    """Sign-in by password or emailed code, and sign-up: the commands that add accounts."""

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
        self.limits.sign_in(context)
        self.limits.check_guessing(email, context)
        found = self.directory.find_user_by_email(email)
        verified = self.passwords.verify(found.password_hash if found else None, password)
        user_id = found.profile.id if found and verified else None
        if user_id is None:
            self.limits.record_failure(email, context)
        digest = self._digest(email)
        policy = self.session_policy

        def action(session: Session, scope: CommandScope) -> Decision[SignedIn]:
            now, attempt_id = scope.now, self.ids.next_id()
            session.attempt_sign_in(
                attempt_id, SignInMethod.PLAIN_EMAIL, user_id, digest,
                now + policy.attempt_lifetime, policy.max_sign_ins, now,
            )  # fmt: skip
            if user_id is None:
                session.reject_credentials(attempt_id, now)
                return Refused(InvalidCredentials())  # recorded: saved, then refused
            return self._add_sign_in(session, attempt_id, user_id, old_token, now)

        done = self.work.run(session_id, action)
        return CommandResult(done.document, done.result.token)

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

    # Emailed codes ----------------------------------------------------------------------

    def start_email_code_sign_in(
        self,
        session_id: int,
        email: str,
        context: RequestContext = RequestContext(),  # noqa: B008 - immutable
    ) -> CommandResult:
        """Start an attempt that waits for an emailed code (same answer for unknown emails)."""
        email = normalise_email(email)
        self.limits.sign_in(context)
        found = self.directory.find_user_by_email(email)
        user_id = found.profile.id if found else None
        digest = self._digest(email)
        policy = self.session_policy

        def action(session: Session, scope: CommandScope) -> Changed[None]:
            session.attempt_sign_in(
                self.ids.next_id(), SignInMethod.EMAIL_OTP, user_id, digest,
                scope.now + policy.attempt_lifetime, policy.max_sign_ins, scope.now,
            )  # fmt: skip
            return Changed(None)

        return CommandResult(self.work.run(session_id, action).document)

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
        self._limit("code-address", context.client_address, self.policy.codes_per_address)
        code = self.new_code()
        code_digest = self._code_digest(attempt_id, code)
        counted = False

        def action(session: Session, scope: CommandScope) -> Changed[CodeSent]:
            nonlocal counted
            session.open_attempt(attempt_id, scope.now)
            if not counted:  # only the owner's session counts, once however often it reruns
                counted = True
                self._limit("code-attempt", str(attempt_id), self.policy.codes_per_attempt)
            attempt = session.prepare_verification(
                attempt_id, code_digest, scope.now + self.policy.code_lifetime, scope.now
            )
            # Looked up before the save: once the new code is committed, nothing may fail
            # the answer.
            to = self._recipient(attempt.id, attempt.user_id or 0, attempt.kind)
            return Changed(CodeSent(to, attempt.kind))

        done = self.work.run(session_id, action)
        sent = done.result
        # An unknown email takes the same path: its message is built, queued and discarded,
        # so neither the answer nor its timing tells whether the account exists.
        minutes = int(self.policy.code_lifetime.total_seconds() // 60)
        purpose = "sign-up" if sent.kind == AttemptKind.SIGN_UP else "sign-in"
        self.mailer.send_code(
            sent.to or DISCARDED, code, purpose, minutes, deliver=sent.to is not None
        )
        return CommandResult(done.document)

    def _recipient(self, attempt_id: int, user_id: int, kind: str) -> str | None:
        if kind == AttemptKind.SIGN_UP:
            pending = self.pending.get(attempt_id)
            return pending.email if pending else None
        profile = self.directory.user_profiles([user_id]).get(user_id)
        return profile.email if profile else None

    def _code_digest(self, attempt_id: int | None, code: str) -> str:
        return self.digester.digest(f"one-time-code:{attempt_id}", code).hex()

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
        digest = self._code_digest(attempt_id, code)

        def action(session: Session, scope: CommandScope) -> Decision[SignedIn]:
            now = scope.now
            verdict = session.verify_code(attempt_id, digest, now)
            if not verdict.accepted:
                return Refused(InvalidCode())  # the failure is recorded: saved, then refused
            attempt = verdict.attempt
            if attempt.user_id is None:
                raise InvalidCode  # an unknown email's code: nothing to record
            if attempt.kind == AttemptKind.SIGN_UP:
                self._create_account(attempt.id, attempt.user_id)
                # Cleaned up before the save: after it, nothing may fail the answer (a
                # retry finds the account made and needs the pending row no more).
                self.pending.delete(attempt.id)
                session.complete_sign_up(attempt.id, now)
            return self._add_sign_in(session, attempt.id, attempt.user_id, old_token, now)

        done = self.work.run(session_id, action)
        return CommandResult(done.document, done.result.token)

    def _create_account(self, attempt_id: int, user_id: int) -> None:
        """Create the verified sign-up's user, once (a retried command finds it made)."""
        if self.directory.user_profiles([user_id]):
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
        # The fields were validated where the request was parsed (api.forms).
        values = {name: (fields.get(name) or "").strip() for name in _SIGN_UP_FIELDS}
        password = fields.get("password") or ""
        if len(password) < MIN_PASSWORD_LENGTH:
            raise WeakPassword
        self._limit("sign-up-address", context.client_address, self.policy.sign_ups_per_address)
        email = normalise_email(values["email"])
        if self.directory.find_user_by_email(email) is not None:
            raise EmailTaken
        attempt_id, user_id = self.ids.next_id(), self.ids.next_id()
        expires_at = self.clock.now() + self.session_policy.attempt_lifetime
        self.pending.put(
            PendingSignUp(
                attempt_id, user_id, email, values["first_name"], values["last_name"],
                self.hasher.hash(password),
            ),
            expires_at,
        )  # fmt: skip

        def action(session: Session, scope: CommandScope) -> Changed[None]:
            session.attempt_sign_up(attempt_id, user_id, self._digest(email), expires_at, scope.now)
            return Changed(None)

        return CommandResult(self.work.run(session_id, action).document)


_SIGN_UP_FIELDS = ("first_name", "last_name", "email", "password")
