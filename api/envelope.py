"""The wire envelope ``{status, message, data, session, errors}``, rendered in one place.

Errors map to HTTP statuses once, here, by family; routes never catch anything.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.deps import set_session_cookie
from application.read_model import SessionInfo
from domain.errors import (
    ConcurrentModification,
    ForbiddenOrigin,
    RateLimited,
    SessionLedgerError,
    TemplateNotFound,
    Unauthorized,
)

T = TypeVar("T")

NO_STORE = {"Cache-Control": "no-store"}


class ErrorDetail(BaseModel):
    """One error: a stable upper-snake code and a human message."""

    code: str
    message: str


class Envelope(BaseModel, Generic[T]):
    """Every JSON response."""

    status: int
    message: str
    data: T | None
    session: SessionInfo | None
    errors: list[ErrorDetail] | None


class ErrorEnvelope(BaseModel):
    """A failed response: ``data`` is null and ``errors`` is non-empty."""

    status: int
    message: str
    data: None
    session: SessionInfo | None
    errors: list[ErrorDetail]


class RenderedJSONResponse(JSONResponse):
    """A JSONResponse whose content may already be the encoded JSON."""

    def render(self, content: Any) -> bytes:
        """``content`` as is when it is bytes, else encoded as JSONResponse does."""
        return content if isinstance(content, bytes) else super().render(content)


def success(
    data: BaseModel | dict[str, Any] | list[Any] | None,
    session: SessionInfo | None,
    status: int = 200,
) -> JSONResponse:
    """A success envelope, never cached."""
    if isinstance(data, BaseModel) and session is not None:
        # The common case, rendered by pydantic's serializer straight to bytes (no dicts,
        # no json.dumps); the same compact JSON JSONResponse would write.
        encoded = b'{"status":%d,"message":"","data":%b,"session":%b,"errors":null}' % (
            status,
            data.model_dump_json().encode(),
            session.model_dump_json().encode(),
        )
        return RenderedJSONResponse(encoded, status_code=status, headers=NO_STORE)
    payload = data.model_dump(mode="json") if isinstance(data, BaseModel) else data
    body = {
        "status": status,
        "message": "",
        "data": payload,
        "session": session.model_dump(mode="json") if session else None,
        "errors": None,
    }
    return JSONResponse(body, status_code=status, headers=NO_STORE)


def failure(
    status: int, code: str, message: str, session: SessionInfo | None = None
) -> JSONResponse:
    """An error envelope, never cached."""
    body = {
        "status": status,
        "message": message,
        "data": None,
        "session": session.model_dump(mode="json") if session else None,
        "errors": [{"code": code, "message": message}],
    }
    return JSONResponse(body, status_code=status, headers=NO_STORE)


def status_of(error: SessionLedgerError) -> int:
    """The HTTP status of a domain error family."""
    if isinstance(error, Unauthorized):
        return 401
    if isinstance(error, ConcurrentModification):
        return 409
    if isinstance(error, TemplateNotFound):
        return 404
    if isinstance(error, ForbiddenOrigin):
        return 403
    if isinstance(error, RateLimited):
        return 429
    if error.code == "UNKNOWN_SESSION":
        return 404
    return 400


_HTTP_CODES = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 415: "UNSUPPORTED_MEDIA_TYPE"}


def install_error_handlers(app: FastAPI) -> None:
    """Render every error as an envelope: domain errors, bad requests, unknown routes (store
    outages and bugs: ``api.failures``)."""

    _document_no_422(app)

    @app.exception_handler(SessionLedgerError)
    def _domain(request: Request, error: SessionLedgerError) -> JSONResponse:
        hidden = isinstance(error, Unauthorized | ForbiddenOrigin)
        session = None if hidden else _session_info(request)
        response = failure(status_of(error), error.code, error.message, session)
        # A session started for this request is the caller's only if its cookie goes out too.
        new_token = getattr(request.state, "new_token", None)
        if session is not None and new_token:
            set_session_cookie(response, request.app.state.services.settings, new_token)
        if isinstance(error, RateLimited):
            response.headers["Retry-After"] = str(error.retry_after)
        challenge = getattr(error, "challenge", None)
        if challenge:
            response.headers["WWW-Authenticate"] = challenge
        return response

    @app.exception_handler(RequestValidationError)
    def _invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        # Name the fields, never echo the values (they may be passwords).
        fields = sorted({str(e["loc"][-1]) for e in error.errors() if e.get("loc")})
        message = "The request is malformed" + (f": check {', '.join(fields)}." if fields else ".")
        return failure(400, "INVALID_REQUEST", message, _session_info(request))

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


def _document_no_422(app: FastAPI) -> None:
    """Drop FastAPI's automatic 422 from the OpenAPI document: a malformed request is a 400
    INVALID_REQUEST in the envelope (``_invalid`` above), never a 422."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        schema = generate()
        for path_item in schema.get("paths", {}).values():
            for operation in path_item.values():
                operation.get("responses", {}).pop("422", None)
        for name in ("HTTPValidationError", "ValidationError"):
            schema.get("components", {}).get("schemas", {}).pop(name, None)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


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
