"""Failures that are not the caller's: a store that does not answer (503) and bugs (500).

A store outage is ``503 SERVICE_UNAVAILABLE`` with ``Retry-After``, a bug ``500
INTERNAL_ERROR``; both in the envelope, with one log line each (which, like every log line of
a request, carries its id). A session started earlier in the same request was committed, so
its cookie still goes out: a caller never loses a cookie the store already knows.
"""

from __future__ import annotations

import logging
import sqlite3

import psycopg
from eventsourcing.persistence import PersistenceError
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from api.deps import set_session_cookie
from api.envelope import failure
from infrastructure.outage import store_unavailable

logger = logging.getLogger("session_ledger.api")

DEFAULT_RETRY_AFTER = 5


def render_failure(request: Request, error: Exception) -> JSONResponse:
    """The answer to an exception no handler of the contract's errors took."""
    services = getattr(request.app.state, "services", None)
    if store_unavailable(error):
        logger.warning(
            "store unavailable on %s %s: %s",
            request.method,
            request.url.path,
            " ".join(str(error).split())[:300] or type(error).__name__,
        )
        response = failure(
            503, "SERVICE_UNAVAILABLE", "The service is unavailable; try again shortly."
        )
        retry = services.settings.database_timeout_seconds if services else DEFAULT_RETRY_AFTER
        response.headers["Retry-After"] = str(retry)
    else:
        logger.error(
            "unhandled %s on %s %s",
            type(error).__name__,
            request.method,
            request.url.path,
            exc_info=error,
        )
        response = failure(500, "INTERNAL_ERROR", "Internal server error.")
    new_token = getattr(request.state, "new_token", None)
    if services is not None and new_token:
        set_session_cookie(response, services.settings, new_token)
    return response


def install_store_error_handlers(app: FastAPI) -> None:
    """Answer store errors inside the middleware stack (so they get the request's id)."""
    for family in (PersistenceError, psycopg.Error, sqlite3.Error):
        app.add_exception_handler(family, _store_error)


def _store_error(request: Request, error: Exception) -> JSONResponse:
    return render_failure(request, error)
