"""Domain errors: one small class each, under a shared base.

An error names what was refused and why, in words (its message). How it travels over HTTP
(status, wire code, headers) is not the domain's business: :mod:`api.errors` holds that
table. Errors that are not the domain's (a malformed request, a missing cookie, a rate limit)
live in :mod:`application.errors`, under the same root.
"""

from __future__ import annotations


class SessionLedgerError(Exception):
    """Raised when the service refuses a command or request; the root of every refusal."""

    message = "The request could not be completed."

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.message)
        if message is not None:
            self.message = message


class DomainError(SessionLedgerError):
    """Raised when a command breaks a rule of the domain; the base of the errors below."""


class InvalidSignInId(DomainError):
    """Raised when a sign-in id does not name a live sign-in of the caller's session."""

    message = "The sign-in id is not valid for this session."


class NoActiveSignIn(DomainError):
    """Raised when a command needs an active sign-in and the session has none."""

    message = "The session has no active sign-in."


class NotAMember(DomainError):
    """Raised when the active user holds no membership of that organization or workspace."""

    message = "The signed-in user is not a member of that organization or workspace."


class UserAlreadySignedIn(DomainError):
    """Raised when a user who already has a live sign-in in the session signs in again."""

    message = "This account is already signed in in this session."


class MaxSignInsReached(DomainError):
    """Raised when a sign-in would exceed the session's maximum of live sign-ins."""

    message = "This session already holds the maximum number of signed-in accounts."


class InvalidCredentials(DomainError):
    """Raised when an email and password do not match an account."""

    message = "Invalid credentials. Please try again."


class InvalidCode(DomainError):
    """Raised when a one-time code is wrong, expired, replaced, or was never sent."""

    message = "The verification code is not valid."


class InvalidAttempt(DomainError):
    """Raised when an attempt id does not name an open attempt of the caller's session."""

    message = "The attempt is not valid for this session."


class EmailTaken(DomainError):
    """Raised when a sign-up uses the email of an existing account."""

    message = "An account with this email already exists."


class WeakPassword(DomainError):
    """Raised when a sign-up's password is too short."""

    message = "The password must be at least 8 characters long."
