"""The form bodies of the /auth routes, validated once, here, at the edge, with one set of
limits (the ``MAX_*`` constants below); the application trusts what it is handed.

Every text field refuses control characters (NUL and the rest of Unicode's ``Cc``), lone
surrogates (``Cs``) and the bidirectional embedding, override and isolate controls (which
let a name display as something else); every field has a bounded length; emails are
trimmed and lower-cased by the one function the application uses too
(:func:`domain.values.normalise_email`). A field that fails is a 400 ``INVALID_REQUEST``
naming the field (never echoing the value), so no store ever sees a value it cannot hold.
Rules with a code of their own stay where they are decided: an unknown strategy
(``UNSUPPORTED_STRATEGY``) in the route, a short new password (``WEAK_PASSWORD``) in the
application.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from domain.values import SignInMethod, normalise_email

_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
MAX_EMAIL = 254  # RFC 5321's limit on a forward path
MAX_NAME = 256
MAX_PASSWORD = 1024  # a password presented to sign in
MAX_NEW_PASSWORD = 256  # a password chosen at sign-up
MAX_CODE = 32
MAX_STRATEGY = 32
_ADDRESS = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


def refuse_controls(value: str) -> str:
    """``value`` if it holds no control character, surrogate or bidi control."""
    for character in value:
        if character in _BIDI_CONTROLS or unicodedata.category(character) in ("Cc", "Cs"):
            raise ValueError("control characters are not allowed")
    return value


def _email(value: str) -> str:
    email = normalise_email(refuse_controls(value))
    if not email:
        raise ValueError("an email address is required")
    return email


def _address(value: str) -> str:
    if _ADDRESS.fullmatch(value) is None:
        raise ValueError("not a valid email address")
    return value


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("a value is required")
    return value


def _name(value: str) -> str:
    name = refuse_controls(value).strip()
    if not name:
        raise ValueError("a name is required")
    return name


# The length bounds apply to the raw value (so a megabyte is refused before any other work).
Email = Annotated[
    str,
    Field(min_length=1, max_length=MAX_EMAIL, description="An email address",
          json_schema_extra={"format": "email"}),
    AfterValidator(_email),
]  # fmt: skip
# An account's email: an address as well (sign-in takes any text, so it answers alike for all).
NewEmail = Annotated[Email, AfterValidator(_address)]
Password = Annotated[
    str, Field(min_length=1, max_length=MAX_PASSWORD), AfterValidator(refuse_controls)
]
NewPassword = Annotated[
    str,
    Field(min_length=1, max_length=MAX_NEW_PASSWORD),
    AfterValidator(refuse_controls),
    AfterValidator(_not_blank),
]
Name = Annotated[str, Field(min_length=1, max_length=MAX_NAME), AfterValidator(_name)]
Code = Annotated[
    str,
    # The pattern documents a well-formed code; a malformed one is INVALID_CODE, not refused
    # here, so the route's contract code stays.
    Field(min_length=1, max_length=MAX_CODE, examples=["123456"],
          json_schema_extra={"pattern": "^[0-9]{6}$"}),
    AfterValidator(refuse_controls),
]  # fmt: skip
Strategy = Annotated[
    str,
    Field(
        max_length=MAX_STRATEGY,
        json_schema_extra={"enum": [SignInMethod.PLAIN_EMAIL, SignInMethod.EMAIL_OTP]},
        description="plain_email (with password) or email_otp",
    ),
    AfterValidator(refuse_controls),
]


class _Form(BaseModel):
    model_config = ConfigDict(extra="ignore")


class SignInForm(_Form):
    """``POST /auth/signin``: ``password`` is required with ``plain_email`` only."""

    email: Email
    strategy: Strategy | None = None
    password: Password | None = Field(default=None, validate_default=True)

    @field_validator("password")
    @classmethod
    def _required_with_plain_email(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None and info.data.get("strategy") == SignInMethod.PLAIN_EMAIL:
            raise ValueError("a password is required with plain_email")
        return value


class SignUpForm(_Form):
    """``POST /auth/signup``."""

    first_name: Name
    last_name: Name
    email: NewEmail
    password: NewPassword


class VerificationForm(_Form):
    """``POST /auth/attempt-verification``."""

    verification_code: Code
