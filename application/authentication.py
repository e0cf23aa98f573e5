"""How accounts enter a session: the Authenticator, with sign-in by password and sign-up
here, and sign-in by emailed one-time code in :mod:`application.email_codes`.

An unknown email and a wrong password are recorded and answered alike, so responses never
tell whether an account exists. Passwords exist only as argon2 hashes (and, for a pending
sign-up, outside the event log until its email is verified).
"""

from __future__ import annotations

from application.authenticator_base import SignedIn
from application.email_codes import EmailCodes
from application.ports import PendingSignUp, RequestContext
from application.session_commands import CommandResult
from application.unit_of_work import Changed, CommandScope, Decision, Refused
from domain.errors import EmailTaken, InvalidCredentials, WeakPassword
from domain.session import Session
from domain.values import SignInMethod, normalise_email

MIN_PASSWORD_LENGTH = 8


class Authenticator(EmailCodes):
    """Sign-in by password or emailed code (:class:`~application.email_codes.EmailCodes`),
    and sign-up: the commands that add accounts."""

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
