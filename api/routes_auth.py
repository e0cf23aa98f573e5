"""The /auth sign-in routes of the contract."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import JSONResponse

from api.deps import OptionalCaller, ServicesDep, bind_session
from api.envelope import Envelope, ErrorEnvelope
from api.rendering import render
from application.read_model import SessionDocument
from domain.errors import InvalidRequest, UnsupportedStrategy
from domain.values import SignInMethod

router = APIRouter(prefix="/auth", tags=["Auth"])

Field = Annotated[str | None, Form()]
MAX_FIELD = 1024


def _required(name: str, value: str | None) -> str:
    if value is None or value == "":
        raise InvalidRequest(f"The field '{name}' is required.")
    if len(value) > MAX_FIELD:
        raise InvalidRequest(f"The field '{name}' is too long.")
    return value


@router.post(
    "/signin",
    summary="Sign in",
    responses={
        200: {"model": Envelope[SessionDocument], "description": "Signed in; the session"},
        400: {
            "model": ErrorEnvelope,
            "description": "INVALID_CREDENTIALS, USER_ALREADY_SIGNED_IN…",
        },
    },
)
def sign_in(
    request: Request,
    services: ServicesDep,
    caller: OptionalCaller,
    email: Field = None,
    password: Field = None,
    strategy: Field = None,
) -> JSONResponse:
    """Sign an account in to the caller's session (a new session if the cookie opens none).

    ``strategy=plain_email`` with ``email`` and ``password`` completes at once and makes the
    new sign-in active; the cookie is replaced.
    """
    if strategy != SignInMethod.PLAIN_EMAIL:
        raise UnsupportedStrategy
    checked_email = _required("email", email)
    checked_password = _required("password", password)
    sessions = services.sessions
    if caller is None:
        started = sessions.start_session()
        session_id, token = int(started.document.id), started.new_token
    else:
        session_id, token = caller.session_id, caller.token
    # A session started here must reach the browser even if the sign-in then fails.
    bind_session(request, sessions, session_id, token if caller is None else None)
    result = sessions.sign_in_with_password(session_id, checked_email, checked_password, token)
    return render(services, result.document, result.new_token)
