"""Sign-in and sign-up by emailed one-time code: start an attempt, send a code, check it.

Unknown emails travel the same path as known ones (an attempt is recorded, a code is
"sent" nowhere), so responses never tell whether an account exists. Codes exist only in
the email and, as a keyed hash, in the VerificationPrepared event.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from application.authenticator_base import AuthenticatorBase, SignedIn
from application.errors import UnsupportedStrategy
from application.ports import RequestContext
from application.session_commands import CommandResult
from application.unit_of_work import Changed, CommandScope, Decision, Refused
from domain.errors import InvalidAttempt, InvalidCode
from domain.ids import parse_id
from domain.session import Session
from domain.values import AttemptKind, SignInMethod, normalise_email

DISCARDED = "nobody@invalid"  # the address on an unknown email's discarded code
_CODE = re.compile(r"[0-9]{6}")


@dataclass(frozen=True)
class CodeSent:
    """Where the new one-time code goes (None: an unknown email) and for which purpose."""

    to: str | None
    kind: str


class EmailCodes(AuthenticatorBase):
    """Sign-in by emailed code, and the code that verifies a sign-up's email."""

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
