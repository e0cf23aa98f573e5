"""The /auth routes of the contract: sign-in (password or emailed code), codes, sign-up."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import JSONResponse

from api.context import ContextDep
from api.deps import Caller, OptionalCaller, RequiredCaller, ServicesDep, bind_session
from api.envelope import Envelope, ErrorEnvelope
from api.forms import SignInForm, SignUpForm, VerificationForm
from api.openapi_contract import id_query
from api.rendering import render
from application.errors import UnsupportedStrategy
from application.read_model import SessionDocument
from domain.values import SignInMethod
from infrastructure.container import Services

router = APIRouter(prefix="/auth", tags=["Auth"])

AttemptId = Annotated[str | None, Query(**id_query("The attempt's id (decimal)"))]


def _responses(codes: str, *, cookie: bool = False) -> dict[int | str, dict[str, Any]]:
    answers: dict[int | str, dict[str, Any]] = {
        200: {"model": Envelope[SessionDocument], "description": "The session"},
        400: {"model": ErrorEnvelope, "description": codes},
        429: {"model": ErrorEnvelope, "description": "Too many requests (RATE_LIMITED)"},
    }
    if cookie:
        answers[401] = {"model": ErrorEnvelope, "description": "No valid cookie (UNAUTHORIZED)"}
    return answers


def _session(request: Request, services: Services, caller: Caller | None) -> tuple[int, str, bool]:
    """The caller's session, or a new one whose cookie goes out whatever happens next."""
    if caller is not None:
        return caller.session_id, caller.token, False
    started = services.commands.start_session()
    session_id, token = int(started.document.id), started.new_token or ""
    bind_session(request, services.queries, session_id, token)
    return session_id, token, True


@router.post(
    "/signin",
    summary="Sign in",
    responses=_responses(
        "INVALID_CREDENTIALS, USER_ALREADY_SIGNED_IN, MAX_SIGN_INS_REACHED, "
        "UNSUPPORTED_STRATEGY, INVALID_REQUEST"
    ),
)
def sign_in(
    request: Request,
    services: ServicesDep,
    caller: OptionalCaller,
    context: ContextDep,
    form: Annotated[SignInForm, Form()],
) -> JSONResponse:
    """Sign an account in to the caller's session (a new session if the cookie opens none).

    - ``strategy=plain_email`` with ``email`` and ``password`` completes at once: the new
      sign-in becomes active and the cookie is replaced.
    - ``strategy=email_otp`` with ``email`` starts an attempt whose ``current_step`` is
      ``verify_email_otp``; send the code with ``/auth/prepare-verification`` and complete
      with ``/auth/attempt-verification``. The answer is the same for unknown emails.
    """
    if form.strategy not in (SignInMethod.PLAIN_EMAIL, SignInMethod.EMAIL_OTP):
        raise UnsupportedStrategy
    session_id, token, started = _session(request, services, caller)
    if form.strategy == SignInMethod.EMAIL_OTP:
        result = services.auth.start_email_code_sign_in(session_id, form.email, context)
        return render(services, result.document, token if started else None)
    signed_in = services.auth.sign_in_with_password(
        session_id, form.email, form.password or "", token, context
    )
    return render(services, signed_in.document, signed_in.new_token)


@router.post(
    "/signup",
    summary="Sign up",
    responses=_responses("INVALID_REQUEST, WEAK_PASSWORD, EMAIL_TAKEN"),
)
def sign_up(
    request: Request,
    services: ServicesDep,
    caller: OptionalCaller,
    context: ContextDep,
    form: Annotated[SignUpForm, Form()],
) -> JSONResponse:
    """Start creating an account; verify the email with a code to create it and sign it in.

    The answer lists the attempt in ``signup_attempts`` (``current_step`` ``verify_email``);
    then ``/auth/prepare-verification?attempt_identifier=ID&strategy=email_otp`` and
    ``/auth/attempt-verification?attempt_identifier=ID`` with ``verification_code``.
    """
    fields: dict[str, str | None] = form.model_dump()
    session_id, token, started = _session(request, services, caller)
    result = services.auth.sign_up(session_id, fields, context)
    return render(services, result.document, token if started else None)


@router.post(
    "/prepare-verification",
    summary="Send a one-time code",
    responses=_responses("INVALID_ATTEMPT, UNSUPPORTED_STRATEGY", cookie=True),
)
def prepare_verification(
    services: ServicesDep,
    caller: RequiredCaller,
    context: ContextDep,
    attempt_identifier: AttemptId = None,
    strategy: Annotated[
        str | None, Query(json_schema_extra={"enum": [SignInMethod.EMAIL_OTP]})
    ] = None,
) -> JSONResponse:
    """Email a new 6-digit code (valid 10 minutes) for an open attempt; older codes stop working."""
    result = services.auth.prepare_verification(
        caller.session_id, attempt_identifier, strategy, context
    )
    return render(services, result.document)


@router.post(
    "/attempt-verification",
    summary="Verify a one-time code",
    responses=_responses("INVALID_CODE, INVALID_ATTEMPT, USER_ALREADY_SIGNED_IN", cookie=True),
)
def attempt_verification(
    services: ServicesDep,
    caller: RequiredCaller,
    context: ContextDep,
    form: Annotated[VerificationForm, Form()],
    attempt_identifier: AttemptId = None,
) -> JSONResponse:
    """Complete an attempt with its code: a new active sign-in, and a new cookie.

    A wrong or expired code is 400 INVALID_CODE; the fifth wrong code ends the attempt.
    """
    result = services.auth.attempt_verification(
        caller.session_id, attempt_identifier, form.verification_code, caller.token, context
    )
    return render(services, result.document, result.new_token)
