"""The projections follow the emailed-code flows: sign-in by code, and sign-up.

These flows record events the password flow never does (``VerificationPrepared``,
non-terminal ``SignInAttemptFailed``, ``SignUpAttempted``, ``SignUpCompleted``). Whatever a
session records, the worker must be able to fold it: the read model must equal the aggregate,
``analytics_sign_ins`` must hold the sign-in, and a rebuild must give the same rows.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from application.read_model import SessionDocument
from domain.errors import InvalidCode
from domain.ids import aggregate_uuid
from domain.session import Session
from infrastructure.clock import SettableClock
from infrastructure.container import Services
from tests.helpers import ALICE, SequentialCodes, services_for
from tests.projections.support import START, all_rows, differences, rebuild_all, records
from tests.projections.test_read_model_property import check_analytics, check_read_sessions

DORA = {
    "first_name": "Dorothea",
    "last_name": "Quixwell",
    "email": "dora.quixwell@example.com",
    "password": "dora-secret-passphrase",
}


@pytest.fixture
def mailed(database_url: str) -> Iterator[tuple[Services, SequentialCodes]]:
    """Services whose one-time codes the test knows (the codes they made, in order)."""
    codes = SequentialCodes()
    with services_for(
        database_url, clock=SettableClock(START), rate_limits=False, new_code=codes
    ) as services:
        yield services, codes


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


def verify_after_a_mistyped_code(
    mailed: tuple[Services, SequentialCodes], session_id: int, attempt: str, token: str | None
) -> SessionDocument:
    """Email a code for ``attempt``, type it wrong once (refused), then right; the session
    after, which has an active sign-in."""
    services, codes = mailed
    auth = services.auth
    auth.prepare_verification(session_id, attempt, "email_otp")
    code = codes.sent[-1]
    with pytest.raises(InvalidCode):
        auth.attempt_verification(session_id, attempt, wrong(code), token)
    signed_in = auth.attempt_verification(session_id, attempt, code, token).document
    assert signed_in.active_signin is not None
    return signed_in


def check_projected_as_recorded(services: Services, session_id: int) -> None:
    """Caught up, the read model is the aggregate and a rebuild changes no row."""
    services.worker.catch_up()
    head = services.sessions.recorder.max_notification_id() or 0
    assert [p.status().position for p in services.projectors] == [head] * len(services.projectors)
    aggregate: Session = services.sessions.repository.get(aggregate_uuid(session_id))
    check_read_sessions(services, {session_id: aggregate}, services.clock.now())
    live = all_rows(services)
    rebuild_all(services)
    rebuilt = all_rows(services)
    assert rebuilt == live, differences(live, rebuilt)


def test_a_sign_in_by_emailed_code_is_projected(mailed: tuple[Services, SequentialCodes]) -> None:
    services = mailed[0]
    auth = services.auth
    started = services.commands.start_session()
    session_id, token = int(started.document.id), started.new_token
    # Given a code sign-in whose first code is mistyped
    attempt = auth.start_email_code_sign_in(session_id, ALICE[0]).document.signin_attempts[0].id
    verify_after_a_mistyped_code(mailed, session_id, attempt, token)
    # Then every view follows
    check_projected_as_recorded(services, session_id)
    aggregate: Session = services.sessions.repository.get(aggregate_uuid(session_id))
    check_analytics(services, {session_id: aggregate})
    row = records(services.views, "analytics_sign_in_attempts", "attempt_id")[attempt]
    assert row["method"] == "email_otp"
    assert row["failed_verifications"] == 1
    assert row["completed_at"] is not None
    assert row["failed_at"] is None


def test_a_sign_up_is_projected(mailed: tuple[Services, SequentialCodes]) -> None:
    services = mailed[0]
    auth = services.auth
    started = services.commands.start_session()
    session_id, token = int(started.document.id), started.new_token
    # Given a sign-up whose first code is mistyped
    signing_up = auth.sign_up(session_id, dict(DORA)).document
    attempt = signing_up.signup_attempts[0].id
    signed_in = verify_after_a_mistyped_code(mailed, session_id, attempt, token)
    assert signed_in.active_signin is not None
    # Then every view follows, and the new account's sign-in is counted like any other
    check_projected_as_recorded(services, session_id)
    sign_ins = records(services.views, "analytics_sign_ins", "sign_in_id")
    assert sign_ins[signed_in.active_signin.id]["user_id"] == signed_in.active_signin.user_id
    assert sign_ins[signed_in.active_signin.id]["ended_at"] is None
