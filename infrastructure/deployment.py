"""What settings say about this deployment: its origins, mode, keys and cookie names.

One place answers "which other origins may call us with the browser's credentials"
(:func:`allowed_origins`); the CORS middleware and the cross-site check both ask it.
"""

from __future__ import annotations

import base64

from infrastructure.settings import Settings

# The cookie names Wacht's SDKs use: ours by contract, and its server SDKs' default.
SESSION_COOKIE_NAMES = ("session_id", "__session")
DEV_SESSION_PARAMETER = "__dev_session__"
DEV_SESSION_HEADER = "X-Development-Session"


def frontend_origin(settings: Settings) -> str:
    """The origin of the application's pages (the public URL when none is configured)."""
    return settings.frontend_url or settings.public_url


def allowed_origins(settings: Settings) -> frozenset[str]:
    """Other origins allowed to call with credentials: the configured ones and the frontend's.

    Origins compare as browsers send them (scheme and host, lower case, no trailing slash).
    """
    configured = {origin.rstrip("/").lower() for origin in settings.allowed_origins}
    return frozenset({*configured, frontend_origin(settings)})


def token_issuer(settings: Settings) -> str:
    """The ``iss`` of session tokens: Wacht's server SDK expects the frontend API's origin."""
    return settings.token_issuer or settings.public_url


def publishable_key(settings: Settings) -> str:
    """``pk_live_``/``pk_test_`` + base64 of our origin, as Wacht's SDKs decode it (not secret)."""
    prefix = "pk_test_" if is_staging(settings) else "pk_live_"
    return prefix + base64.b64encode(settings.public_url.encode()).decode()


def is_staging(settings: Settings) -> bool:
    """True when development sessions (in the URL, not a cookie) are accepted."""
    return settings.deployment_mode == "staging"
