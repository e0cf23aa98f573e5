"""CORS with credentials for the allowed origins only (Wacht's SDK calls us from the app's origin).

Starlette's ``CORSMiddleware`` does not fit: it adds ``Access-Control-Allow-Credentials`` and
``Access-Control-Expose-Headers`` to answers for *any* origin and answers a refused preflight
with a plain-text 400. Here an origin outside :func:`~infrastructure.deployment.allowed_origins`
gets no CORS header at all, and its preflight falls through to the app (a 405 envelope).
"""

from __future__ import annotations

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from infrastructure.deployment import DEV_SESSION_HEADER

ALLOWED_METHODS = "GET, POST, OPTIONS"
ALLOWED_HEADERS = "Content-Type, Authorization, X-Request-Id"
EXPOSED_HEADERS = f"{DEV_SESSION_HEADER}, X-Request-Id, Retry-After"
PREFLIGHT_MAX_AGE = "600"


class CredentialedCors:
    """Echo an allowed ``Origin`` with credentials; answer its preflights; ``Vary: Origin``."""

    def __init__(self, app: ASGIApp, origins: frozenset[str]) -> None:
        self.app = app
        self.origins = origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        allowed = origin is not None and origin.lower() in self.origins
        preflight = scope["method"] == "OPTIONS" and "access-control-request-method" in headers
        if allowed and preflight:
            await self._preflight(origin or "")(scope, receive, send)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                add_cors_headers(MutableHeaders(scope=message), origin, self.origins)
            await send(message)

        await self.app(scope, receive, send_with_cors)

    @staticmethod
    def _preflight(origin: str) -> Response:
        return Response(
            status_code=204,
            headers={
                "Access-Control-Allow-Origin": origin,
                "Access-Control-Allow-Credentials": "true",
                "Access-Control-Allow-Methods": ALLOWED_METHODS,
                "Access-Control-Allow-Headers": ALLOWED_HEADERS,
                "Access-Control-Max-Age": PREFLIGHT_MAX_AGE,
                "Vary": "Origin",
            },
        )


def add_cors_headers(answer: MutableHeaders, origin: str | None, origins: frozenset[str]) -> None:
    """To an answer's headers: ``Vary: Origin`` always; for an allowed ``origin``, its echo
    with credentials and the headers its pages may read."""
    _vary_on_origin(answer)
    if origin is not None and origin.lower() in origins:
        answer["Access-Control-Allow-Origin"] = origin
        answer["Access-Control-Allow-Credentials"] = "true"
        answer["Access-Control-Expose-Headers"] = EXPOSED_HEADERS


def _vary_on_origin(headers: MutableHeaders) -> None:
    """Caches must not hand one origin's answer to another."""
    present = [v.strip().lower() for value in headers.getlist("vary") for v in value.split(",")]
    if "origin" not in present:
        headers.append("Vary", "Origin")
