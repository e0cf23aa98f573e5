"""Every error's answer on the wire, from one table, by one handler.

:data:`ANSWERS` maps an error class to its HTTP status, its stable upper-snake code and the
headers it adds; an error takes the entry of the nearest class in its MRO, so a new subclass
answers as its family until it gets a line of its own. The errors themselves know nothing of
HTTP (:mod:`domain.errors`, :mod:`application.errors`); their message is the envelope's.

Failures that are not the caller's take the same path: a store that does not answer is
``503 SERVICE_UNAVAILABLE`` with ``Retry-After``, a bug ``500 INTERNAL_ERROR``; both with one
log line (which, like every log line of a request, carries its id), and neither shows the
library's words. Two families keep their own small handlers because their answer comes from
the exception itself: FastAPI's request validation (the fields named, never their values) and
Starlette's HTTP errors (unknown route, wrong method).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import psycopg
from eventsourcing.persistence import PersistenceError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.deps import set_session_cookie
from api.envelope import failure
from application.errors import (
    AdminUnauthorized,
    ConcurrentModification,
    ForbiddenOrigin,
    InvalidExport,
    InvalidRequest,
    InvalidWebhookUrl,
    RateLimited,
    StoreNotEmpty,
    StoreUnavailable,
    TemplateNotFound,
    Unauthorized,
    UnknownEndpoint,
    UnknownSession,
    UnsupportedStrategy,
    WebhooksNotConfigured,
)
from application.read_model import SessionInfo
from domain.errors import (
    EmailTaken,
    InvalidAttempt,
    InvalidCode,
    InvalidCredentials,
    InvalidSignInId,
    MaxSignInsReached,
    NoActiveSignIn,
    NotAMember,
    SessionLedgerError,
    UserAlreadySignedIn,
    WeakPassword,
)
from infrastructure.outage import store_unavailable

logger = logging.getLogger("session_ledger.api")

DEFAULT_RETRY_AFTER = 5  # seconds, when no settings say how long the store may take


def _when_limit_lifts(_: Request, error: BaseException) -> int:
    assert isinstance(error, RateLimited)
    return error.retry_after


def _store_timeout(request: Request, _: BaseException) -> int:
    services = getattr(request.app.state, "services", None)
    return services.settings.database_timeout_seconds if services else DEFAULT_RETRY_AFTER


@dataclass(frozen=True)
class Answer:
    """How one family of errors is answered."""

    status: int
    code: str
    # The envelope's message; None: the error's own (only ours are fit to be shown).
    message: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    # Seconds for Retry-After, when a retry later may succeed.
    retry_after: Callable[[Request, BaseException], int] | None = None
    # Whether the envelope shows the caller's session (never to a caller not let in).
    shows_session: bool = True


UNAVAILABLE = Answer(
    503,
    "SERVICE_UNAVAILABLE",
    "The service is unavailable; try again shortly.",
    retry_after=_store_timeout,
    shows_session=False,
)
FAILED = Answer(500, "INTERNAL_ERROR", "Internal server error.", shows_session=False)

ANSWERS: Mapping[type[BaseException], Answer] = {
    SessionLedgerError: Answer(400, "BAD_REQUEST"),
    # The domain's refusals
    InvalidSignInId: Answer(400, "INVALID_SIGN_IN_ID"),
    NoActiveSignIn: Answer(400, "NO_ACTIVE_SIGN_IN"),
    NotAMember: Answer(400, "NOT_A_MEMBER"),
    UserAlreadySignedIn: Answer(400, "USER_ALREADY_SIGNED_IN"),
    MaxSignInsReached: Answer(400, "MAX_SIGN_INS_REACHED"),
    InvalidCredentials: Answer(400, "INVALID_CREDENTIALS"),
    InvalidCode: Answer(400, "INVALID_CODE"),
    InvalidAttempt: Answer(400, "INVALID_ATTEMPT"),
    EmailTaken: Answer(400, "EMAIL_TAKEN"),
    WeakPassword: Answer(400, "WEAK_PASSWORD"),
    # The request and the caller
    InvalidRequest: Answer(400, "INVALID_REQUEST"),
    UnsupportedStrategy: Answer(400, "UNSUPPORTED_STRATEGY"),
    Unauthorized: Answer(401, "UNAUTHORIZED", shows_session=False),
    AdminUnauthorized: Answer(
        401,
        "UNAUTHORIZED",
        headers={"WWW-Authenticate": 'Basic realm="session-ledger admin", charset="UTF-8"'},
        shows_session=False,
    ),
    ForbiddenOrigin: Answer(403, "FORBIDDEN_ORIGIN", shows_session=False),
    RateLimited: Answer(429, "RATE_LIMITED", retry_after=_when_limit_lifts),
    ConcurrentModification: Answer(409, "CONCURRENT_MODIFICATION"),
    TemplateNotFound: Answer(404, "TEMPLATE_NOT_FOUND"),
    # The audit trail and webhooks (admin routes)
    UnknownSession: Answer(404, "UNKNOWN_SESSION"),
    StoreNotEmpty: Answer(400, "STORE_NOT_EMPTY"),
    InvalidExport: Answer(400, "INVALID_EXPORT"),
    UnknownEndpoint: Answer(400, "UNKNOWN_ENDPOINT"),
    InvalidWebhookUrl: Answer(400, "INVALID_WEBHOOK_URL"),
    WebhooksNotConfigured: Answer(400, "WEBHOOKS_NOT_CONFIGURED"),
    # Failures, not refusals
    StoreUnavailable: UNAVAILABLE,
    Exception: FAILED,
}


def answer_for(error: BaseException) -> Answer:
    """The entry of the nearest class in ``error``'s MRO; an unlisted failure is a store
    outage when it (or its cause) says the store did not answer, else a bug."""
    answer = next((ANSWERS[c] for c in type(error).__mro__ if c in ANSWERS), FAILED)
    if answer is FAILED and store_unavailable(error):
        return UNAVAILABLE
    return answer


def render_error(request: Request, error: Exception) -> JSONResponse:
    """The envelope answering ``error``, with its headers and, when the request started a
    session, its cookie (a refusal sends it with the session it shows; a failure, which is
    not the caller's, always: a caller never loses a cookie the store already knows)."""
    answer = answer_for(error)
    where = f"{request.method} {request.url.path}"
    if answer is UNAVAILABLE:
        words = " ".join(str(error).split())[:300] or type(error).__name__
        logger.warning("store unavailable on %s: %s", where, words)
    elif answer is FAILED:
        logger.error("unhandled %s on %s", type(error).__name__, where, exc_info=error)
    session = _session_info(request) if answer.shows_session else None
    response = failure(answer.status, answer.code, answer.message or str(error), session)
    services = getattr(request.app.state, "services", None)
    token: str = getattr(request.state, "new_token", None) or ""
    settings = services.settings if services is not None and token else None
    if settings is not None and session is not None:  # a refusal: with the session shown
        set_session_cookie(response, settings, token)
    response.headers.update(answer.headers)
    if answer.retry_after is not None:
        response.headers["Retry-After"] = str(answer.retry_after(request, error))
    if settings is not None and answer.status >= 500:  # a failure: whatever else goes
        set_session_cookie(response, settings, token)
    return response


_HTTP_CODES = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 415: "UNSUPPORTED_MEDIA_TYPE"}


def install_error_handlers(app: FastAPI) -> None:
    """Render every error as an envelope. Store errors are answered inside the middleware
    stack (so they get the request's id); other bugs reach ``render_error`` from
    ``api.app.RequestContextMiddleware``."""
    for family in (SessionLedgerError, PersistenceError, psycopg.Error, sqlite3.Error):
        app.add_exception_handler(family, render_error)

    @app.exception_handler(RequestValidationError)
    def _invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        # Name the fields, never echo the values (they may be passwords).
        fields = sorted({str(e["loc"][-1]) for e in error.errors() if e.get("loc")})
        message = "The request is malformed" + (f": check {', '.join(fields)}." if fields else ".")
        answer = ANSWERS[InvalidRequest]
        return failure(answer.status, answer.code, message, _session_info(request))

    @app.exception_handler(StarletteHTTPException)
    def _http(request: Request, error: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(error.status_code, "HTTP_ERROR")
        message = {404: "Not found.", 405: "Method not allowed."}.get(
            error.status_code, str(error.detail)
        )
        response = failure(error.status_code, code, message)
        for name, value in (error.headers or {}).items():
            response.headers[name] = value
        return response


def _session_info(request: Request) -> SessionInfo | None:
    """The caller's session, when a route resolved one before failing."""
    loader = getattr(request.state, "session_info", None)
    if loader is None:
        return None
    try:
        info = loader()
    except SessionLedgerError:
        return None
    return info if isinstance(info, SessionInfo) else None
