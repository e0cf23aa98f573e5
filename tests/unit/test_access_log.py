"""The access line ``serve`` writes is uvicorn's own line, uncoloured, with the request id."""

from __future__ import annotations

import logging

import pytest
from uvicorn.logging import AccessFormatter as UvicornAccessFormatter

from api.logs import AccessFormatter

UVICORN_FORMAT = (
    '%(levelprefix)s [%(request_id)s] %(client_addr)s - "%(request_line)s" %(status_code)s'
)


def access_record(status: int) -> logging.LogRecord:
    """A record as uvicorn's protocol logs it after a response starts."""
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:51000", "POST", "/session/switch-sign-in?sign_in_id=7", "1.1", status), None,
    )  # fmt: skip
    record.request_id = "abc123def456"
    return record


@pytest.mark.parametrize("status", [200, 401, 503, 299])
def test_the_line_is_uvicorns_uncoloured_line(status: int) -> None:
    ours = AccessFormatter().format(access_record(status))
    theirs = UvicornAccessFormatter(UVICORN_FORMAT, use_colors=False).format(access_record(status))
    assert ours == theirs.rstrip()  # uvicorn leaves a trailing space for an unknown status
    assert ours.startswith("INFO:     [abc123def456] 127.0.0.1:51000 - ")


def test_a_line_of_another_shape_is_written_as_its_message() -> None:
    record = logging.LogRecord(
        "uvicorn.access", logging.WARNING, __file__, 1, "odd %s", ("x",), None
    )
    assert AccessFormatter().format(record) == "WARNING:  [-] odd x"  # as uvicorn pads it
