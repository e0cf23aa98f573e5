"""The webhook receiver of bench/webhooks.py: answers 200 at once and counts what it got.

    python -m bench.webhook_receiver --port P

``GET /count`` answers ``{"received": n, "unique": m}`` (requests, and distinct webhook-ids).
It does not verify signatures (the tests do, with ``standardwebhooks``): a receiver on
another machine would spend that CPU, not this one.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import uvicorn


class Counter:
    """A bare ASGI app."""

    def __init__(self) -> None:
        self.received = 0
        self.ids: set[bytes] = set()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["method"] == "GET":
            body = json.dumps({"received": self.received, "unique": len(self.ids)}).encode()
        else:
            while (await receive()).get("more_body"):
                pass
            self.received += 1
            self.ids.update(v for k, v in scope["headers"] if k == b"webhook-id")
            body = b""
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(Counter(), host="127.0.0.1", port=args.port, log_level="warning",
                access_log=False, lifespan="off")  # fmt: skip


if __name__ == "__main__":
    main()
