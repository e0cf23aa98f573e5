"""Domain errors: one small class each, under a shared base.

Each error carries the stable upper-snake ``code`` of the wire contract, so the API can
render it without knowing the class.
"""

from __future__ import annotations


class SessionLedgerError(Exception):
    """Raised when a command is refused; the base of every domain error."""

    code = "BAD_REQUEST"
    message = "The request could not be completed."

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.message)
        if message is not None:
            self.message = message


class InvalidSignInId(SessionLedgerError):
    """Raised when a sign-in id does not name a live sign-in of the caller's session."""

    code = "INVALID_SIGN_IN_ID"
    message = "The sign-in id is not valid for this session."


class NoActiveSignIn(SessionLedgerError):
    """Raised when a command needs an active sign-in and the session has none."""

    code = "NO_ACTIVE_SIGN_IN"
    message = "The session has no active sign-in."


class NotAMember(SessionLedgerError):
    """Raised when the active user holds no membership of that organization or workspace."""

    code = "NOT_A_MEMBER"
    message = "The signed-in user is not a member of that organization or workspace."


class UserAlreadySignedIn(SessionLedgerError):
    """Raised when a user who already has a live sign-in in the session signs in again."""

    code = "USER_ALREADY_SIGNED_IN"
    message = "This account is already signed in in this session."


class MaxSignInsReached(SessionLedgerError):
    """Raised when a sign-in would exceed the session's maximum of live sign-ins."""

    code = "MAX_SIGN_INS_REACHED"
    message = "This session already holds the maximum number of signed-in accounts."


class InvalidCredentials(SessionLedgerError):
    """Raised when an email and password do not match an account."""

    code = "INVALID_CREDENTIALS"
    message = "Invalid credentials. Please try again."


class UnsupportedStrategy(SessionLedgerError):
    """Raised when a sign-in strategy is unknown or not offered by this service."""

    code = "UNSUPPORTED_STRATEGY"
    message = "That sign-in strategy is not supported."


class InvalidRequest(SessionLedgerError):
    """Raised when a request is malformed: a missing or badly formed field."""

    code = "INVALID_REQUEST"
    message = "The request is malformed."


class Unauthorized(SessionLedgerError):
    """Raised when a request needs a valid session cookie and has none."""

    code = "UNAUTHORIZED"
    message = "Unauthorized."


class ConcurrentModification(SessionLedgerError):
    """Raised when a command kept losing the race against concurrent changes of its session."""

    code = "CONCURRENT_MODIFICATION"
    message = "The session was changed concurrently; please retry."


class TemplateNotFound(SessionLedgerError):
    """Raised when a session token is asked for with a template the service does not have."""

    code = "TEMPLATE_NOT_FOUND"
    message = "No such token template."


class InvalidCode(SessionLedgerError):
    """Raised when a one-time code is wrong, expired, replaced, or was never sent."""

    code = "INVALID_CODE"
    message = "The verification code is not valid."


class InvalidAttempt(SessionLedgerError):
    """Raised when an attempt id does not name an open attempt of the caller's session."""

    code = "INVALID_ATTEMPT"
    message = "The attempt is not valid for this session."


class EmailTaken(SessionLedgerError):
    """Raised when a sign-up uses the email of an existing account."""

    code = "EMAIL_TAKEN"
    message = "An account with this email already exists."


class WeakPassword(SessionLedgerError):
    """Raised when a sign-up's password is too short."""

    code = "WEAK_PASSWORD"
    message = "The password must be at least 8 characters long."


class RateLimited(SessionLedgerError):
    """Raised when a caller exceeded a rate limit; ``retry_after`` is in seconds."""

    code = "RATE_LIMITED"
    message = "Too many requests; try again later."

    def __init__(self, retry_after: int) -> None:
        super().__init__()
        self.retry_after = retry_after


class ForbiddenOrigin(SessionLedgerError):
    """Raised when a cookie-authenticated POST comes from another site."""

    code = "FORBIDDEN_ORIGIN"
    message = "Cross-site requests are not allowed."


class AdminUnauthorized(Unauthorized):
    """Raised when an admin route is called without the admin token."""

    message = "Admin token required."
    challenge = 'Basic realm="session-ledger admin", charset="UTF-8"'
