"""What the settings make besides the stores: the session and sign-in policies, and the
outbox that mails codes."""

from __future__ import annotations

from datetime import timedelta

from application.policy import SessionPolicy
from application.sign_in_limits import AuthPolicy
from infrastructure.deployment import token_issuer
from infrastructure.mail import LogTransport, Outbox, SmtpSettings, SmtpTransport
from infrastructure.settings import Settings


def outbox_for(settings: Settings) -> Outbox:
    """The outbox: SMTP when a host is set, else the log."""
    if not settings.smtp_host:
        return Outbox(LogTransport(), settings.smtp_from)
    smtp = SmtpSettings(
        host=settings.smtp_host,
        port=settings.smtp_port,
        username=settings.smtp_username,
        password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
        sender=settings.smtp_from,
        starttls=settings.smtp_starttls,
    )
    return Outbox(SmtpTransport(smtp), settings.smtp_from)


def session_policy_for(settings: Settings) -> SessionPolicy:
    """Lifetimes, limits and retries of sessions, from the settings."""
    return SessionPolicy(
        max_sign_ins=settings.max_sign_ins,
        sign_in_lifetime=timedelta(seconds=settings.sign_in_lifetime_seconds),
        attempt_lifetime=timedelta(seconds=settings.sign_in_attempt_lifetime_seconds),
        command_retries=settings.command_retries,
        idle_timeout=(
            timedelta(seconds=settings.sign_in_idle_timeout_seconds)
            if settings.sign_in_idle_timeout_seconds
            else None
        ),
        activity_resolution=timedelta(seconds=settings.activity_resolution_seconds),
        token_lifetime=timedelta(seconds=settings.token_lifetime_seconds),
        token_issuer=token_issuer(settings),
    )


def auth_policy_for(settings: Settings) -> AuthPolicy:
    """Code lifetime and sign-in rate limits, from the settings."""
    return AuthPolicy(
        code_lifetime=timedelta(seconds=settings.code_lifetime_seconds),
        window_seconds=settings.rate_limit_window_seconds,
        sign_ins_per_address=settings.rate_limit_sign_ins_per_address,
        failures_per_account_and_address=settings.rate_limit_failures_per_account_and_address,
        account_failures_before_cool_down=settings.rate_limit_account_failures_before_cool_down,
        cool_down_max_seconds=settings.rate_limit_cool_down_max_seconds,
        codes_per_attempt=settings.rate_limit_codes_per_attempt,
        codes_per_address=settings.rate_limit_codes_per_address,
        verifications_per_address=settings.rate_limit_verifications_per_address,
        sign_ups_per_address=settings.rate_limit_sign_ups_per_address,
    )
