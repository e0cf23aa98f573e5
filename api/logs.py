"""Every log line of a request carries the request's id (``X-Request-Id``).

The id lives in a context variable that the request middleware sets; a logging filter on
the handlers copies it onto each record as ``request_id`` (``-`` outside a request), and
``serve`` formats uvicorn's lines and ours with it. (A handler filter rather than a record
factory: it is configured by name, so uvicorn's worker processes install it too.)
"""

from __future__ import annotations

import copy
import http
import logging
from contextvars import ContextVar
from typing import Any

from uvicorn.config import LOGGING_CONFIG

REQUEST_ID: ContextVar[str] = ContextVar("request_id", default="-")


class RequestIdFilter(logging.Filter):
    """Adds the current request's id to each record it sees; drops nothing."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Set ``record.request_id`` and let the record through."""
        record.request_id = REQUEST_ID.get()
        return True


_PHRASES = {status.value: f"{status.value} {status.phrase}" for status in http.HTTPStatus}


class AccessFormatter(logging.Formatter):
    """uvicorn's access line, uncoloured, without its per-record copy and styling (a tenth
    of a cached read's CPU went to formatting it): ``INFO:     [id] address - "request line"
    status phrase``, the same text uvicorn writes to a file."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        """The line from uvicorn's arguments (address, method, path, HTTP version, status)."""
        prefix = f"{record.levelname + ':':<9} [{getattr(record, 'request_id', '-')}]"
        if not isinstance(record.args, tuple) or len(record.args) != 5:
            return f"{prefix} {record.getMessage()}"  # not uvicorn's access line
        address, method, path, version, status = record.args
        phrase = _PHRASES.get(status) if isinstance(status, int) else None
        return f'{prefix} {address} - "{method} {path} HTTP/{version}" {phrase or status}'


def log_config() -> dict[str, Any]:
    """uvicorn's logging configuration with the request id on every line, ours included
    (the root logger gets uvicorn's default handler)."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config["filters"] = {"request_id": {"()": f"{__name__}.RequestIdFilter"}}
    for handler in config["handlers"].values():
        handler["filters"] = ["request_id"]
    formatters = config["formatters"]
    formatters["default"]["fmt"] = "%(levelprefix)s [%(request_id)s] %(message)s"
    formatters["access"] = {"()": f"{__name__}.AccessFormatter"}
    config["root"] = {"handlers": ["default"], "level": "INFO"}
    return config
