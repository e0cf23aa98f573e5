"""Session responses: the envelope plus the ``session_id`` cookie when it was (re)issued."""

from __future__ import annotations

from fastapi.responses import JSONResponse

from api.deps import set_session_cookie
from api.envelope import success
from application.read_model import SessionDocument
from infrastructure.container import Services


def render(
    services: Services, document: SessionDocument, new_token: str | None = None
) -> JSONResponse:
    """A 200 envelope with the session, setting the cookie if a new token was issued."""
    response = success(document, document.info())
    if new_token is not None:
        set_session_cookie(response, services.settings, new_token)
    return response
