"""Success envelopes rendered straight to bytes are the bytes the dict path writes."""

from __future__ import annotations

from fastapi.responses import JSONResponse
from pydantic import BaseModel

from api.envelope import success
from application.read_model import SessionInfo


class Nested(BaseModel):
    label: str
    count: int


class Data(BaseModel):
    token: str
    expires: int
    name: str | None
    items: list[Nested]
    extra: dict[str, list[str]]


def test_the_bytes_match_the_json_response_of_the_same_envelope() -> None:
    data = Data(
        token='quote " backslash \\ newline \n tab \t',
        expires=1_767_225_600_000,
        name="Zoë ☃ 😀 \u2028",
        items=[Nested(label="a", count=1), Nested(label="", count=-2)],
        extra={"permissions": ["org:read", "org:write"], "none": []},
    )
    info = SessionInfo(id="42", created_at="2026-01-01T00:00:00Z", updated_at="2026-01-01Z")
    fast = success(data, info)
    reference = JSONResponse(
        {
            "status": 200,
            "message": "",
            "data": data.model_dump(mode="json"),
            "session": info.model_dump(mode="json"),
            "errors": None,
        }
    )
    assert fast.body == reference.body
    assert fast.status_code == 200
    assert fast.headers["content-type"] == "application/json"
    assert fast.headers["cache-control"] == "no-store"
