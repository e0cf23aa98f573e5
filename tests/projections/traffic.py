"""Realistic traffic through the sessions application's commands, for the projection tests."""

from __future__ import annotations

import contextlib
from concurrent.futures import ThreadPoolExecutor

from application.session_commands import CommandResult
from domain.errors import InvalidCredentials
from infrastructure.container import Services
from tests.helpers import ACME, ACME_WEB, ALICE, BOB, CAROL


def sign_in(
    services: Services, session_id: int, email: str, password: str, token: str | None
) -> CommandResult:
    """Sign an account in to a session with its password."""
    return services.auth.sign_in_with_password(session_id, email, password, token)


def busy_session(services: Services, rounds: int) -> int:
    """A session that signs two accounts in and out ``rounds`` times, switching between them.

    Each round records about twenty events of every kind the projections fold: attempts,
    a failed one, completions, a switch, organization and workspace activations and clears,
    sign-outs of one account and of all.
    """
    started = services.commands.start_session()
    session_id, token = int(started.document.id), started.new_token
    for round_ in range(rounds):
        first = sign_in(services, session_id, *ALICE[:2], token)
        alice = first.document.active_signin_id
        second = sign_in(services, session_id, *BOB[:2], first.new_token)
        token = second.new_token
        with contextlib.suppress(InvalidCredentials):  # recorded as a failed attempt
            sign_in(services, session_id, CAROL[0], "wrong-password", token)
        services.commands.switch_sign_in(session_id, alice)
        services.commands.switch_organization(session_id, ACME if round_ % 2 == 0 else "")
        services.commands.switch_workspace(session_id, ACME_WEB if round_ % 2 == 0 else "")
        if round_ % 2:
            bob = second.document.active_signin_id
            token = services.commands.sign_out(session_id, bob, token).new_token or token
        token = services.commands.sign_out(session_id, None, token).new_token or token
    return session_id


def produce_history(services: Services, sessions: int, rounds: int, threads: int = 4) -> int:
    """Run :func:`busy_session` for ``sessions`` sessions at once; the head of the log after."""
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda _: busy_session(services, rounds), range(sessions)))
    return services.sessions.recorder.max_notification_id() or 0
