"""The floor of a durable switch in Python: issue 13's "lean sketch", served beside ours.

``POST /session/switch-sign-in`` does the least a switch that records something durable can
do: an async FastAPI route (no thread hop), the cookie checked by HMAC and remembered in a
dict, one ``INSERT`` through psycopg's async pool with ``synchronous_commit`` on (the
commit waits for the WAL flush, as ours does), and the saved bytes of a real switch answer.
It keeps no aggregate, no audit chain, no projection, no request context: what it costs is
what any Python service on FastAPI, uvicorn and psycopg pays for one durable write here.

    BENCH_NOOP_BODY_FILE=body.json BENCH_LEAN_DATABASE_URL=postgresql://… \\
        python -m bench.lean_switch [--host H] [--port P]

Started like bench/noop_app.py (uvicorn, one worker, ``log_level="info"``), so bench/peer.py
can print how far a one-write design could go against the same load.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import uvicorn
from fastapi import FastAPI, Request, Response
from psycopg_pool import AsyncConnectionPool

from api.heap import settle_heap
from api.logs import log_config
from bench.noop_app import BODY_ENV

DATABASE_ENV = "BENCH_LEAN_DATABASE_URL"


def create_app() -> FastAPI:
    """The lean app: one table, one INSERT per switch."""
    body = Path(os.environ[BODY_ENV]).read_bytes()
    key = secrets.token_bytes(32)
    known: dict[str, bytes] = {}
    pool = AsyncConnectionPool(os.environ[DATABASE_ENV], min_size=10, max_size=10, open=False)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await pool.open(wait=True)
        async with pool.connection() as connection:
            await connection.execute(
                "CREATE TABLE IF NOT EXISTS lean_switches (id BIGSERIAL PRIMARY KEY,"
                " session BYTEA NOT NULL, sign_in_id TEXT, at TIMESTAMPTZ DEFAULT now())"
            )
        settle_heap()  # as `serve` does once started (api/heap.py)
        yield
        await pool.close()

    app = FastAPI(title="bench-lean", lifespan=lifespan)

    @app.post("/session/switch-sign-in")
    async def switch_sign_in(request: Request, sign_in_id: str | None = None) -> Response:
        cookie = request.cookies.get("session_id", "")
        session = known.get(cookie)
        if session is None:
            session = hmac.new(key, cookie.encode(), hashlib.sha256).digest()
            known[cookie] = session
        async with pool.connection() as connection:
            await connection.execute(
                "INSERT INTO lean_switches (session, sign_in_id) VALUES (%s, %s)",
                (session, sign_in_id),
            )
        return Response(content=body, media_type="application/json")

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8002)
    args = parser.parse_args()
    # The same access line as ``serve`` writes (api.logs), so only the app differs.
    uvicorn.run(
        create_app(), host=args.host, port=args.port, log_level="info", log_config=log_config()
    )


if __name__ == "__main__":
    main()
