"""The OpenAPI document states the contract exactly: id patterns, and every status a route
can answer, each with the envelope's schema (and none FastAPI adds that the API never gives).

Routes declare what is theirs (200, their 400 codes, 401 where a cookie is required, 429 on
rate-limited routes); the answers any route can give are added here once: 400 for a
malformed request, 500 for a bug and 503 when the store does not answer, and, on
state-changing routes, 403 for a cross-site request and 409 for a lost race.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

ID_PATTERN = r"^[0-9]{1,20}$"
ID_OR_EMPTY_PATTERN = r"^([0-9]{1,20})?$"

_ERROR = {"$ref": "#/components/schemas/ErrorEnvelope"}
_ANY_ROUTE = {
    "400": "Malformed request (INVALID_REQUEST)",
    "500": "A bug (INTERNAL_ERROR); the answer names its request in X-Request-Id",
    "503": "The store does not answer (SERVICE_UNAVAILABLE); see Retry-After",
}
_STATE_CHANGING = {
    "403": "Cross-site request (FORBIDDEN_ORIGIN)",
    "409": "Lost the race with concurrent changes (CONCURRENT_MODIFICATION)",
}


def id_query(description: str, *, empty_allowed: bool = False) -> dict[str, Any]:
    """``Query(...)`` keywords documenting a decimal id (the route checks it itself, so a
    malformed id keeps its contract code, e.g. INVALID_SIGN_IN_ID, rather than a generic
    INVALID_REQUEST)."""
    pattern = ID_OR_EMPTY_PATTERN if empty_allowed else ID_PATTERN
    return {"description": description, "json_schema_extra": {"pattern": pattern}}


def document_contract(app: FastAPI) -> None:
    """Add the statuses every route shares to each operation of ``app``'s document."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        schema = generate()
        for path_item in schema.get("paths", {}).values():
            for method, operation in path_item.items():
                responses = operation.setdefault("responses", {})
                # FastAPI's automatic 422: a malformed request is a 400 INVALID_REQUEST in
                # the envelope (``api.errors``), never a 422.
                responses.pop("422", None)
                shared = dict(_ANY_ROUTE)
                if method not in ("get", "head", "options"):
                    shared.update(_STATE_CHANGING)
                for status, description in shared.items():
                    responses.setdefault(
                        status,
                        {"description": description,
                         "content": {"application/json": {"schema": _ERROR}}},
                    )  # fmt: skip
        for name in ("HTTPValidationError", "ValidationError"):
            schema.get("components", {}).get("schemas", {}).pop(name, None)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
