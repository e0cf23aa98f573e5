"""The one table from error to answer, and the one place requests are validated."""

from __future__ import annotations

import sqlite3

import pytest
from pydantic import ValidationError

import application.errors
import domain.errors
from api.errors import ANSWERS, FAILED, UNAVAILABLE, answer_for
from api.forms import MAX_NEW_PASSWORD, MAX_PASSWORD, SignInForm, SignUpForm
from application.errors import AdminUnauthorized, RateLimited, StoreUnavailable, Unauthorized
from domain.errors import DomainError, InvalidCode, SessionLedgerError
from infrastructure.outage import StoreDown


def declared_errors() -> list[type[BaseException]]:
    """Every error class the domain and the application declare."""
    return [
        value
        for module in (domain.errors, application.errors)
        for value in vars(module).values()
        if isinstance(value, type)
        and issubclass(value, BaseException)
        and value.__module__ == module.__name__
    ]


@pytest.mark.parametrize("error", declared_errors(), ids=lambda e: e.__name__)
def test_every_declared_error_has_its_own_line_in_the_table(error: type[BaseException]) -> None:
    assert (error.__doc__ or "").startswith("Raised when")
    # Abstract bases excepted: they are never raised, their families answer line by line
    if error not in (DomainError, application.errors.RequestRefused):
        assert error in ANSWERS


def test_codes_are_stable_upper_snake_and_name_one_family_each() -> None:
    codes = [answer.code for answer in ANSWERS.values()]
    assert all(code.isupper() and " " not in code for code in codes)
    # Only the admin's 401 shares its code (it adds the Basic challenge)
    assert sorted(c for c in set(codes) if codes.count(c) > 1) == ["UNAUTHORIZED"]


def test_an_error_answers_as_its_nearest_family() -> None:
    class NewRefusal(InvalidCode):
        """Raised when a subclass has no line of its own yet."""

    assert answer_for(NewRefusal()) == ANSWERS[InvalidCode]
    assert answer_for(AdminUnauthorized()).headers["WWW-Authenticate"].startswith("Basic ")
    assert answer_for(Unauthorized()).headers == {}
    assert answer_for(SessionLedgerError()).status == 400
    assert answer_for(RateLimited(7)).status == 429


def test_failures_are_an_outage_or_a_bug_and_never_show_their_words() -> None:
    assert answer_for(StoreDown("pool timeout")) is UNAVAILABLE
    assert answer_for(StoreUnavailable("cannot open")) is UNAVAILABLE
    assert answer_for(sqlite3.OperationalError("database is locked")) is UNAVAILABLE
    assert answer_for(sqlite3.OperationalError("no such table: x")) is FAILED
    assert answer_for(KeyError("x")) is FAILED
    assert UNAVAILABLE.message
    assert FAILED.message
    assert not UNAVAILABLE.shows_session
    assert not FAILED.shows_session


def test_no_error_carries_anything_of_http() -> None:
    for error in declared_errors():
        assert not {"code", "status", "challenge", "headers"} & set(vars(error)), error


SIGN_UP = {"first_name": "Ann", "last_name": "Lee", "email": "ann@example.com", "password": "x" * 8}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("password", "   "),
        ("password", "x" * (MAX_NEW_PASSWORD + 1)),
        ("email", "ann"),
        ("email", "ann@example"),
        ("first_name", "  "),
    ],
)
def test_a_sign_up_field_is_refused_by_its_form(field: str, value: str) -> None:
    with pytest.raises(ValidationError) as refused:
        SignUpForm.model_validate({**SIGN_UP, field: value})
    assert [e["loc"] for e in refused.value.errors()] == [(field,)]


def test_a_sign_up_form_at_its_limits_is_accepted() -> None:
    form = SignUpForm.model_validate(
        {**SIGN_UP, "email": " Ann@Example.COM ", "password": "x" * MAX_NEW_PASSWORD}
    )
    assert form.email == "ann@example.com"


def test_a_password_is_required_with_plain_email_only() -> None:
    with pytest.raises(ValidationError) as refused:
        SignInForm.model_validate({"email": "ann@example.com", "strategy": "plain_email"})
    assert [e["loc"] for e in refused.value.errors()] == [("password",)]
    assert SignInForm.model_validate({"email": "ann@example.com", "strategy": "email_otp"})
    # An unknown strategy is the route's UNSUPPORTED_STRATEGY, not a malformed form
    assert SignInForm.model_validate({"email": "ann", "strategy": "oauth"}).password is None
    long = SignInForm.model_validate({"email": "a@b.io", "password": "x" * MAX_PASSWORD})
    assert long.password is not None
