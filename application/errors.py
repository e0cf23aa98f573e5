"""Errors that are not the domain's: the request, the caller's credentials, the service's limits
and stores, the audit trail and webhooks. One small class each, under :class:`RequestRefused`
(or, for a store that does not answer, :class:`StoreUnavailable`).

Like the domain's (:mod:`domain.errors`), they carry a human message and, where the caller
needs one, a value (``retry_after``); how each travels over HTTP (status, wire code, headers)
is :mod:`api.errors`' table. They live here, not in ``api``, because the application and the
infrastructure raise them too.
"""

from __future__ import annotations

from domain.errors import SessionLedgerError


class RequestRefused(SessionLedgerError):
    """Raised when the service refuses a request for a reason outside the domain's rules."""


class InvalidRequest(RequestRefused):
    """Raised when a request is malformed: a missing or badly formed field."""

    message = "The request is malformed."


class UnsupportedStrategy(RequestRefused):
    """Raised when a sign-in strategy is unknown or not offered by this service."""

    message = "That sign-in strategy is not supported."


class Unauthorized(RequestRefused):
    """Raised when a request needs a valid session cookie and has none."""

    message = "Unauthorized."


class AdminUnauthorized(Unauthorized):
    """Raised when an admin route is called without the admin token."""

    message = "Admin token required."


class ForbiddenOrigin(RequestRefused):
    """Raised when a cookie-authenticated POST comes from another site."""

    message = "Cross-site requests are not allowed."


class RateLimited(RequestRefused):
    """Raised when a caller exceeded a rate limit; ``retry_after`` is in seconds."""

    message = "Too many requests; try again later."

    def __init__(self, retry_after: int) -> None:
        super().__init__()
        self.retry_after = retry_after


class ConcurrentModification(RequestRefused):
    """Raised when a command kept losing the race against concurrent changes of its session."""

    message = "The session was changed concurrently; please retry."


class TemplateNotFound(RequestRefused):
    """Raised when a session token is asked for with a template the service does not have."""

    message = "No such token template."


class UnknownSession(RequestRefused):
    """Raised when an audit asks for a session (or a version of it) the store has never seen."""

    message = "No such session."


class StoreNotEmpty(RequestRefused):
    """Raised when an import would mix with events already in the store."""

    message = "Import needs an empty store."


class InvalidExport(RequestRefused):
    """Raised when an export file is malformed, partial or does not match its own chain."""

    message = "The export cannot be imported."


class UnknownEndpoint(RequestRefused):
    """Raised when an endpoint id names no webhook endpoint."""

    message = "No such webhook endpoint."


class InvalidWebhookUrl(RequestRefused):
    """Raised when an endpoint URL is not an http(s) URL on an allowed address."""

    message = "The webhook URL must be an http(s) URL on a public address."


class WebhooksNotConfigured(RequestRefused):
    """Raised when endpoints are managed without SESSION_LEDGER_WEBHOOK_KEY set."""

    message = "Set SESSION_LEDGER_WEBHOOK_KEY (kept outside the database) to use webhooks."


class StoreUnavailable(RuntimeError):
    """Raised when the store cannot be opened or does not answer in time; the message is one
    printable line. A failure of the service, not a refusal: retrying later may succeed."""
