"""/openapi.json: the six routes, the cookie that opens a session, and the envelope."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from tests.e2e.harness import Json
from tests.e2e.wire import ENVELOPE_KEYS, SESSION_KEYS

ROUTES = {
    ("/session", "get"),
    ("/session/switch-sign-in", "post"),
    ("/session/sign-out", "post"),
    ("/session/switch-organization", "post"),
    ("/session/switch-workspace", "post"),
    ("/auth/signin", "post"),
}


@pytest.fixture(scope="module")
def spec() -> Json:
    """The document the app serves (building it needs no store)."""
    app = create_app()
    client = TestClient(app, base_url="https://testserver")  # no lifespan: no services
    response = client.get("/openapi.json")
    assert response.status_code == 200
    document: Json = response.json()
    return document


def resolve(spec: Json, schema: Json) -> Json:
    """A schema with its ``$ref`` followed."""
    while "$ref" in schema:
        name = schema["$ref"].removeprefix("#/components/schemas/")
        schema = spec["components"]["schemas"][name]
    return schema


def operations(spec: Json) -> Iterator[tuple[str, str, Json]]:
    """Every operation of the six routes."""
    for path, method in sorted(ROUTES):
        yield path, method, spec["paths"][path][method]


def response_schema(spec: Json, operation: Json, status: str) -> Json:
    """The resolved JSON schema of one documented response."""
    content = operation["responses"][status]["content"]["application/json"]
    return resolve(spec, content["schema"])


def test_the_six_routes_are_documented(spec: Json) -> None:
    # Given the document the app serves
    # Then it lists the six routes with their methods
    documented = {(p, m) for p, item in spec["paths"].items() for m in item}
    assert documented >= ROUTES


def test_the_session_cookie_is_the_security_scheme(spec: Json) -> None:
    # Given the security schemes the document declares
    schemes = spec["components"]["securitySchemes"]
    cookie = [n for n, s in schemes.items() if (s["type"], s["in"]) == ("apiKey", "cookie")]

    # Then one is the session_id cookie, and every route names it
    assert len(cookie) == 1
    assert schemes[cookie[0]]["name"] == "session_id"
    for path, method, operation in operations(spec):
        assert {cookie[0]: []} in operation.get("security", []), (path, method)


def test_every_answer_is_documented_as_the_envelope(spec: Json) -> None:
    # Given each route's documented answers
    for path, method, operation in operations(spec):
        # Then the success is the envelope around the Session object
        success = response_schema(spec, operation, "200")
        assert set(success["properties"]) == ENVELOPE_KEYS, (path, method)
        data = success["properties"]["data"]
        data_schemas = [resolve(spec, s) for s in data.get("anyOf", [data])]
        assert any(set(s.get("properties", {})) == SESSION_KEYS for s in data_schemas)
        # and each failure documented is the envelope with a list of {code, message}
        failures = [s for s in operation["responses"] if s.startswith("4")]
        assert method == "get" or "400" in failures, (path, method)
        for status in failures:
            failure = response_schema(spec, operation, status)
            assert set(failure["properties"]) == ENVELOPE_KEYS, (path, method, status)
            errors = failure["properties"]["errors"]
            detail = resolve(spec, errors["items"])
            assert set(detail["properties"]) == {"code", "message"}


def test_the_cookie_routes_document_the_401(spec: Json) -> None:
    # Given the routes that need a session cookie
    for path, method, operation in operations(spec):
        if path.startswith("/session/"):
            # Then each documents the 401 in the envelope
            assert "401" in operation["responses"], (path, method)


def test_no_route_documents_a_422(spec: Json) -> None:
    # Given that a malformed request is a 400 in the envelope, never a 422
    # Then no route documents a 422 or FastAPI's validation error body
    documented: list[Any] = [
        (path, method)
        for path, method, operation in operations(spec)
        if "422" in operation["responses"]
    ]
    assert documented == []
    assert "HTTPValidationError" not in spec["components"]["schemas"]


def _parameter(operation: Json, name: str) -> Json:
    found: list[Json] = [p for p in operation.get("parameters", []) if p["name"] == name]
    assert len(found) == 1, (name, operation.get("parameters"))
    schema: Json = found[0]["schema"]
    # FastAPI spells an optional parameter as anyOf [string, null], keywords beside it
    string: Json = next((s for s in schema.get("anyOf", []) if s.get("type") == "string"), {})
    return {**schema, **string}


def _form(spec: Json, operation: Json) -> Json:
    content = operation["requestBody"]["content"]["application/x-www-form-urlencoded"]
    return resolve(spec, content["schema"])


def test_the_document_states_the_contract_exactly(spec: Json) -> None:
    paths = spec["paths"]
    # Ids carry their pattern (empty allowed where empty clears)
    switch = paths["/session/switch-sign-in"]["post"]
    assert _parameter(switch, "sign_in_id")["pattern"] == r"^[0-9]{1,20}$"
    organization = paths["/session/switch-organization"]["post"]
    assert _parameter(organization, "organization_id")["pattern"] == r"^([0-9]{1,20})?$"
    prepare = paths["/auth/prepare-verification"]["post"]
    assert _parameter(prepare, "attempt_identifier")["pattern"] == r"^[0-9]{1,20}$"
    assert _parameter(prepare, "strategy")["enum"] == ["email_otp"]
    # The sign-in strategy is an enum, and required form fields are required
    sign_in = _form(spec, paths["/auth/signin"]["post"])
    strategy = sign_in["properties"]["strategy"]
    assert [s["enum"] for s in strategy["anyOf"] if "enum" in s] == [["plain_email", "email_otp"]]
    assert sign_in["required"] == ["email"]
    sign_up = _form(spec, paths["/auth/signup"]["post"])
    assert set(sign_up["required"]) == {"first_name", "last_name", "email", "password"}
    verification = _form(spec, paths["/auth/attempt-verification"]["post"])
    assert verification["required"] == ["verification_code"]
    # Every operation documents 400, 500 and 503, state-changing ones 403 and 409, and the
    # ones that need the cookie 401, each with the envelope's schema
    for path, item in paths.items():
        for method, operation in item.items():
            expected = {"400", "500", "503"} | ({"403", "409"} if method == "post" else set())
            if {"cookieAuth": []} in operation.get("security", []) and path in (
                "/auth/prepare-verification", "/auth/attempt-verification",
                "/session/switch-sign-in", "/session/sign-out", "/session/token",
            ):  # fmt: skip
                expected.add("401")
            assert expected <= set(operation["responses"]), (path, method)
            for status in expected:
                schema = response_schema(spec, operation, status)
                assert set(schema["properties"]) == ENVELOPE_KEYS, (path, method, status)
