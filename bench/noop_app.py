"""The baseline of bench/switch.py: a FastAPI endpoint that does nothing but answer.

``POST /session/switch-sign-in`` returns, as ``application/json``, the bytes of a real switch
response that bench/switch.py saved in the file named by ``BENCH_NOOP_BODY_FILE``. Like the
real route it is a plain ``def`` (FastAPI runs it in its thread pool) and it takes the same
query parameter; it reads no cookie and touches no database. ``GET /session`` and
``GET /session/token`` answer the same way with the files named by ``BENCH_NOOP_SESSION_FILE``
and ``BENCH_NOOP_TOKEN_FILE`` when those are set (bench/peer.py compares our reads with them).

    BENCH_NOOP_BODY_FILE=body.json python -m bench.noop_app [--host H] [--port P] [--workers N]

It is started the way ``session-ledger serve`` starts uvicorn: one worker gets the app
object with ``log_level="info"`` and ``api.logs.log_config()``; several go through
``api.serving.run_workers``, as ``serve --workers N`` does.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import uvicorn
from fastapi import FastAPI, Response

from api.heap import settle_heap
from api.logs import log_config
from api.serving import run_workers

BODY_ENV = "BENCH_NOOP_BODY_FILE"
READS_ENV = {"/session": "BENCH_NOOP_SESSION_FILE", "/session/token": "BENCH_NOOP_TOKEN_FILE"}


def create_app() -> FastAPI:
    """The no-op app serving the saved body."""
    body = Path(os.environ[BODY_ENV]).read_bytes()
    app = FastAPI(title="bench-noop")

    @app.post("/session/switch-sign-in")
    def switch_sign_in(sign_in_id: str | None = None) -> Response:
        return Response(content=body, media_type="application/json")

    for path, variable in READS_ENV.items():
        if os.environ.get(variable):
            _add_read(app, path, Path(os.environ[variable]).read_bytes())
    settle_heap()  # as `serve` does once started (api/heap.py): the same server settings
    return app


def _add_read(app: FastAPI, path: str, body: bytes) -> None:
    """A GET route at ``path`` answering ``body``, shaped like the real read routes."""

    @app.get(path)
    def read(template: str = "default") -> Response:
        return Response(content=body, media_type="application/json")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    if args.workers > 1:
        # Exactly as ``session-ledger serve --workers N`` does (TCP_NODELAY listener).
        run_workers("bench.noop_app:create_app", args.host, args.port, args.workers)
        return
    # The same access line as ``serve`` writes (api.logs), so only the app differs.
    uvicorn.run(
        create_app(), host=args.host, port=args.port, log_level="info", log_config=log_config()
    )


if __name__ == "__main__":
    main()
