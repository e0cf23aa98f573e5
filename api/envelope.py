"""The wire envelope ``{status, message, data, session, errors}``, rendered in one place.

Which error is which status and code is ``api.errors``' table; routes never catch anything.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from fastapi.responses import JSONResponse
from pydantic import BaseModel

from application.read_model import SessionInfo

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
