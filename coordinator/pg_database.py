"""The database facade on PostgreSQL: the same `write` / `read` as SQLite's
(database.py), over a pool of asyncpg connections.

Writes run at once, several together on pooled connections (a round trip to the
server costs more than SQLite's whole write): what must not happen twice locks its
rows, whichever coordinator or connection asks (`Dialect.skip_locked`, `for_update`,
`share_lock`). Writes that ask to be batched (frame records) queue and commit
together, one savepoint each; a write of one statement (`one_statement`: the audit
log's rows) runs without BEGIN and COMMIT. A deadlock between coordinators' transactions
is undone by the server and the write runs again. A server that cannot be reached
(restarting) fails the call with `StoreUnavailable` (HTTP 503); the pool opens new
connections once it is back.
"""
from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any, Awaitable, Callable, Iterable

import asyncpg

from .database import Database
from .store.connection import Row, is_one_statement, is_store_function
from .store import frames as frame_sql
from .store.pg_migrations import migrate_postgresql
from .store.postgresql import RETRYABLE, PostgresConnection, create_pool, unavailable

log = logging.getLogger(__name__)


class PostgresDatabase(Database):
    """`Database` on PostgreSQL (`postgresql://user@host/db`). Store functions only:
    a plain function of SQLite's own connection has nothing to run on here."""

    MAX_BATCH = 64
    # Batches of records committed side by side: a round trip to the server costs more
    # than the work of a statement, so one batch at a time left the server waiting.
    WRITERS = 3
    RETRIES = 5
    parallel_writes = True

    def __init__(self, url: str, *, pool_size: int = 16):  # noqa: super().__init__: SQLite's
        self.url = url
        self.path = None  # type: ignore[assignment]
        self.pool: asyncpg.Pool | None = None
        self._pool_size = pool_size
        self._queue: deque[tuple[Callable[..., Any], tuple, asyncio.Future]] = deque()
        self._writers: set[asyncio.Task] = set()
        self.batches = 0
        self.batched_writes = 0

    async def open(self) -> None:
        self.pool = await create_pool(self.url, max_size=self._pool_size)
        await self.write(migrate_postgresql)

    async def close(self) -> None:
        if self._writers:
            await asyncio.gather(*self._writers, return_exceptions=True)
        if self.pool is not None:
            pool, self.pool = self.pool, None
            await pool.close()

    async def write(self, fn: Callable[..., Any], *args: Any, batched: bool = False) -> Any:
        """Run the store function `fn(connection, *args)` as one transaction."""
        _check(fn)
        if not batched:
            self.batches += 1
            self.batched_writes += 1
            return await self._retrying(self._one, fn, args)
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._queue.append((fn, args, future))
        if len(self._writers) < self.WRITERS:
            writer = asyncio.create_task(self._drain(), name="db-writer")
            self._writers.add(writer)
            writer.add_done_callback(self._writers.discard)
        return await future

    async def _retrying(self, run: Callable[..., Any], *args: Any) -> Any:
        for attempt in range(self.RETRIES):
            try:
                return await run(*args)
            except RETRYABLE:
                if attempt == self.RETRIES - 1:
                    raise
                await asyncio.sleep(0.005 * (attempt + 1))
            except Exception as exc:
                lost = unavailable(exc)
                if lost is None:
                    raise
                raise lost from exc

    async def _one(self, fn: Callable[..., Any], args: tuple) -> Any:
        async with self._pool().acquire() as raw:
            if is_one_statement(fn):
                return await fn(PostgresConnection(raw), *args)
            async with raw.transaction():
                return await fn(PostgresConnection(raw), *args)

    async def _drain(self) -> None:
        while self._queue:
            batch = [self._queue.popleft()]
            while self._queue and len(batch) < self.MAX_BATCH:
                batch.append(self._queue.popleft())
            try:
                outcomes = await self._retrying(self._group, batch)
            except Exception as exc:
                outcomes = [(False, exc)] * len(batch)
            self.batches += 1
            self.batched_writes += len(batch)
            for (_, _, future), (ok, value) in zip(batch, outcomes):
                if future.done():
                    continue
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)

    async def _group(self, batch: list) -> list[tuple[bool, Any]]:
        """One transaction for the batch. Writes rarely fail, so they run first without
        savepoints (each costs two round trips, a fifth of the coordinator's time);
        if one fails, the transaction is undone and the batch runs again with a
        savepoint per write, so one failing write undoes only itself. A write alone
        needs none: its failure undoes it all."""
        if len(batch) == 1:
            fn, args, _ = batch[0]
            return [await _outcome(self._one(fn, args))]
        try:
            return await self._run_group(batch, savepoints=False)
        except _OneFailed:
            return await self._run_group(batch, savepoints=True)

    async def _run_group(self, batch: list, savepoints: bool) -> list[tuple[bool, Any]]:
        outcomes: list[tuple[bool, Any]] = []
        async with self._pool().acquire() as raw:
            async with raw.transaction():
                conn = PostgresConnection(raw)
                counts: dict[int, tuple[int, float, int]] = {}
                news: list[tuple[str, str]] = []
                conn.shot_counts, conn.news = counts, news
                for fn, args, _ in batch:
                    before = dict(counts) if savepoints else counts
                    told = len(news)
                    outcome = await _outcome(_in_savepoint(raw, fn, conn, args)
                                             if savepoints else fn(conn, *args))
                    if not outcome[0]:
                        if not savepoints:
                            raise _OneFailed()   # undoes the transaction
                        counts.clear()
                        counts.update(before)   # undone with its savepoint
                        del news[told:]
                    outcomes.append(outcome)
                if counts:
                    await frame_sql.add_shot_counts(conn, counts)
                if news:
                    await frame_sql.notify_all(conn, news)
        return outcomes

    async def read(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run the store function `fn(connection, *args)` on a pooled connection."""
        _check(fn)
        try:
            async with self._pool().acquire() as raw:
                return await fn(PostgresConnection(raw), *args)
        except Exception as exc:
            lost = unavailable(exc)
            if lost is None:
                raise
            raise lost from exc

    async def read_bulk(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await self.read(fn, *args)

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:  # type: ignore[override]
        return await self.read(_fetchall, sql, tuple(params))

    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> Row | None:  # type: ignore[override]
        return await self.read(_fetchone, sql, tuple(params))

    def _pool(self) -> asyncpg.Pool:
        assert self.pool is not None, "database is not open"
        return self.pool


class _OneFailed(Exception):
    """A write of a batch run without savepoints failed: run it again with them."""


async def _outcome(write: Awaitable[Any]) -> tuple[bool, Any]:
    """(True, result) or (False, the write's own error); a lost server or a deadlock
    is raised: it undoes the whole batch, which runs again or fails whole."""
    try:
        return True, await write
    except RETRYABLE:
        raise
    except Exception as exc:
        if unavailable(exc) is not None:
            raise
        return False, exc


async def _in_savepoint(raw: asyncpg.Connection, fn: Callable[..., Any],
                        conn: PostgresConnection, args: tuple) -> Any:
    async with raw.transaction():
        return await fn(conn, *args)


def _check(fn: Callable[..., Any]) -> None:
    if not is_store_function(fn):
        raise TypeError(f"{getattr(fn, '__qualname__', fn)!r}: PostgreSQL runs store "
                        "functions (async def fn(c: Connection, ...)) only")


async def _fetchall(c: PostgresConnection, sql: str, params: tuple) -> list[Row]:
    return await c.fetchall(sql, params)


async def _fetchone(c: PostgresConnection, sql: str, params: tuple) -> Row | None:
    return await c.fetchone(sql, params)
