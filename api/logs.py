"""Every log line of a request carries the request's id (``X-Request-Id``).

The id lives in a context variable that the request middleware sets; a logging filter on
the handlers copies it onto each record as ``request_id`` (``-`` outside a request), and
``serve`` formats uvicorn's lines and ours with it. (A handler filter rather than a record
factory: it is configured by name, so uvicorn's worker processes install it too.)
"""

from __future__ import annotations

import copy
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


def log_config() -> dict[str, Any]:
    """uvicorn's logging configuration with the request id on every line, ours included
    (the root logger gets uvicorn's default handler)."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config["filters"] = {"request_id": {"()": f"{__name__}.RequestIdFilter"}}
    for handler in config["handlers"].values():
        handler["filters"] = ["request_id"]
    formatters = config["formatters"]
    formatters["default"]["fmt"] = "%(levelprefix)s [%(request_id)s] %(message)s"
    formatters["access"]["fmt"] = (
        '%(levelprefix)s [%(request_id)s] %(client_addr)s - "%(request_line)s" %(status_code)s'
    )
    config["root"] = {"handlers": ["default"], "level": "INFO"}
    return config
