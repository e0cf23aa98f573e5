"""Single read statements issued from the event loop, over psycopg's async pool.

The serving process answers most requests from a thread pool, because the event store's
client is synchronous. For the read browsers repeat most (Wacht's SDK polls ``GET /session``
from every tab), the thread costs more than the read: every request hands the GIL between
the event loop and a worker several times (about 40 futex calls per request under load);
issued from the loop itself, the one statement took GET /session from 600 to 960 answers a
second in the same hour (docs/performance.md). This pool serves that statement.

It connects exactly as the views' synchronous pool does (the same keyword arguments, so the
same connect and statement timeouts and TCP settings), checks an idle connection before use,
and waits for a free one no longer than the store's timeout; its errors are psycopg's, so an
outage answers 503 like any other read. It is opened and closed by the app's lifespan, on
the loop that uses it. Only a single-server store gets one: a cluster URL's failover handling
lives in the synchronous pool (:mod:`infrastructure.multihost`), so cluster reads stay there.

Under load, psycopg's execute machinery and the pool then cost a read more than its own
work: :class:`Together` lets the reads that arrive while a statement is out share the next
one (GET /session went from 2,367 to 4,430 answers a second in the same run).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Generic, TypeVar

from eventsourcing.postgres import PostgresDatastore
from psycopg import AsyncConnection
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool

from infrastructure.outage import written_while_idle

Pool = AsyncConnectionPool[AsyncConnection[DictRow]]

SIZE = 8  # one loop: connections in use at once are the reads awaiting their answer
IN_FLIGHT = 1  # statements of one Together out at once
BATCH_LIMIT = 256  # lookups answered by one statement

Q = TypeVar("Q")
R = TypeVar("R")


class AsyncReads:
    """Small async pools for one-statement reads of one PostgreSQL database: one per event
    loop that opened it (a server has one loop; tests may serve one set of services from
    several apps, each with its own loop)."""

    def __init__(self, kwargs: Mapping[str, Any], timeout_seconds: float) -> None:
        self._kwargs = {**kwargs, "autocommit": True, "row_factory": dict_row}
        self._timeout = timeout_seconds
        self._pools: dict[asyncio.AbstractEventLoop, Pool] = {}

    @property
    def is_open(self) -> bool:
        """Whether a pool is open on the running loop."""
        return self._pool() is not None

    async def open(self) -> None:
        """Open a pool on the running loop; its connections are made in the background."""
        loop = asyncio.get_running_loop()
        if loop in self._pools:
            return
        pool: Pool = AsyncConnectionPool(
            kwargs=self._kwargs,
            connection_class=AsyncConnection[DictRow],
            min_size=1,
            max_size=SIZE,
            open=False,
            timeout=self._timeout,
            reconnect_timeout=self._timeout,
            check=_check_idle,
            name="async-reads",
        )
        await pool.open(wait=False)
        self._pools[loop] = pool

    async def close(self) -> None:
        """Close the running loop's pool and its connections."""
        pool = self._pools.pop(asyncio.get_running_loop(), None)
        if pool is not None:
            await pool.close()

    async def fetch_all(self, sql: str, params: Mapping[str, Any]) -> list[DictRow]:
        """The rows of one statement, prepared on its connection."""
        pool = self._pool()
        if pool is None:
            msg = "no async read pool is open on this loop"
            raise RuntimeError(msg)
        async with pool.connection() as connection:
            cursor = await connection.execute(sql, params, prepare=True)
            return await cursor.fetchall()

    def _pool(self) -> Pool | None:
        try:
            return self._pools.get(asyncio.get_running_loop())
        except RuntimeError:  # no running loop
            return None


def async_reads_for(datastore: object, timeout_seconds: float) -> AsyncReads | None:
    """An (unopened) pool beside a single-server PostgreSQL datastore's; None otherwise."""
    if not isinstance(datastore, PostgresDatastore):
        return None
    kwargs = getattr(datastore.pool, "kwargs", None)
    if not isinstance(kwargs, dict) or kwargs.get("target_session_attrs"):
        return None
    if "," in str(kwargs.get("host") or ""):  # several servers: a cluster URL
        return None
    return AsyncReads(kwargs, timeout_seconds)


async def _check_idle(connection: AsyncConnection[Any]) -> None:
    """:func:`infrastructure.outage.check_idle_connection` for the async pool."""
    if written_while_idle(connection):
        await AsyncConnectionPool.check_connection(connection)


class Together(Generic[Q, R]):
    """Lookups made on one event loop, answered together: one call of ``answer`` (one
    statement) for all the lookups waiting when it starts, at most ``in_flight`` at once.

    Under load, each statement and its round trip are shared by the requests that arrived
    while the previous one was out; alone, a lookup starts its statement at once. A lookup
    is answered by a statement started after it was made, so it sees every write committed
    before (read-your-writes holds). If ``answer`` raises, every lookup of that call does.
    """

    def __init__(
        self,
        answer: Callable[[Sequence[Q]], Awaitable[Sequence[R]]],
        in_flight: int = IN_FLIGHT,
        limit: int = BATCH_LIMIT,
    ) -> None:
        self._answer = answer
        self._in_flight = in_flight
        self._limit = limit
        self._waiting: list[tuple[Q, asyncio.Future[R]]] = []
        self._running = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def __call__(self, query: Q) -> R:
        """The answer to ``query``."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._waiting.append((query, future))
        if self._running < self._in_flight:
            self._running += 1
            task = loop.create_task(self._drain())
            self._tasks.add(task)  # the loop keeps only a weak reference
            task.add_done_callback(self._tasks.discard)
        return await future

    async def _drain(self) -> None:
        try:
            while self._waiting:
                batch = self._waiting[: self._limit]
                del self._waiting[: self._limit]
                try:
                    answers = await self._answer([query for query, _ in batch])
                except asyncio.CancelledError:  # the loop is closing: so are the requests
                    for _, future in batch:
                        future.cancel()
                    raise
                except Exception as error:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(error)
                else:
                    for (_, future), answer in zip(batch, answers, strict=True):
                        if not future.done():  # not cancelled meanwhile
                            future.set_result(answer)
        finally:
            self._running -= 1
