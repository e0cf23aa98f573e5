"""Session responses: the envelope plus the ``session_id`` cookie when it was (re)issued."""

from __future__ import annotations

from fastapi.responses import JSONResponse

from api.deps import COOKIE_NAME
from api.envelope import success
from application.read_model import SessionDocument
from infrastructure.container import Services


def render(
    services: Services, document: SessionDocument, new_token: str | None = None
) -> JSONResponse:
    """A 200 envelope with the session, setting the cookie if a new token was issued."""
    response = success(document, document.info())
    if new_token is not None:
        response.set_cookie(
            COOKIE_NAME,
            new_token,
            max_age=services.settings.sign_in_lifetime_seconds,
            path="/",
            secure=services.settings.cookie_secure,
            httponly=True,
            samesite="lax",
        )
    return response
