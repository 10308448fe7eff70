"""The one facade around the database: a single write path, and reads beside it.

Store functions (coordinator/store/, `async def fn(c: Connection, ...)`) are run by
it; this is the SQLite backend of that contract (coordinator/store/connection.py).
"""
from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterable, TypeVar, overload

from .store.connection import is_slow, slow
from .store.migrations import migrate
from .store.sqlite import WRITER_PRAGMAS, Reader, SQLiteConnection, call, checkpoint, connect

__all__ = ["Database", "open_database", "slow"]

T = TypeVar("T")


class Database:
    """The one facade around SQLite. Store functions are `async def` functions of a
    `Connection` (coordinator/store/connection.py); `write` runs one as a transaction,
    `read` runs one on a reading connection's thread, which never blocks the writer
    in WAL mode. SQLite's connection never waits, so a store coroutine is driven to
    its end at once on whatever thread holds the connection. A plain function gets
    the `sqlite3.Connection` itself (tests, SQLite-only maintenance).

    Writes run on the event loop itself, one connection, one at a time. A write on
    the per-frame path takes 0.1-0.3 ms of SQLite; handing it to a database thread
    cost more than that, mostly waiting for the GIL and a CPU. When the connection is
    free a write runs at once, in the caller's turn of the loop: a node asking for a
    job gets it without waiting for a batch (docs/performance.md). Writes that ask to
    be batched (frame records), and any asked while the connection is lent to a
    worker thread (a `@slow` whole-shot write), queue for the writer task and go
    together: one BEGIN IMMEDIATE ... COMMIT with a savepoint each, so one failing
    write rolls back only itself. The writing connection never checkpoints by
    itself (a checkpoint syncs the disk): a second connection copies the WAL into the
    database file from a worker thread, at most once a second, while writes go on.
    """

    # Whether two writes may run at once (PostgreSQL's pool); SQLite's are one at a time.
    parallel_writes = False

    MAX_BATCH = 64          # the longest the loop is held by one batch: ~10-20 ms
    CHECKPOINT_SECONDS = 1.0

    def __init__(self, path: Path):
        self.path = path
        self._reader: Reader | None = None
        self._bulk: Reader | None = None
        self._writer_conn: SQLiteConnection | None = None
        self._queue: deque[tuple[Callable[..., Any], tuple, asyncio.Future]] = deque()
        self._writer: asyncio.Task | None = None
        self._last_checkpoint = 0.0
        self._lent = False  # a worker thread has the writing connection
        self._checkpointer: asyncio.Task | None = None
        self._checkpoint_conn: sqlite3.Connection | None = None
        self._checkpoint_timer: asyncio.TimerHandle | None = None
        # Batches committed and writes in them, for benchmarks and tests.
        self.batches = 0
        self.batched_writes = 0

    async def open(self) -> None:
        # shared: a slow write borrows it on a worker thread while every other write
        # waits, so one thread at a time uses it.
        self._writer_conn = connect(self.path, WRITER_PRAGMAS, shared=True)
        await self.write(migrate)
        self._checkpoint_conn = connect(self.path, (), shared=True).raw
        self._reader = Reader(self.path, "db-reader")
        await self._reader.open()
        # Big listings (a 100,000-frame shot's frames, page after page) read on a
        # connection and thread of their own: the quick reads never queue behind them.
        self._bulk = Reader(self.path, "db-bulk")
        await self._bulk.open()
        await self.read_bulk(_background_thread)

    async def close(self) -> None:
        if self._checkpoint_timer is not None:
            self._checkpoint_timer.cancel()
            self._checkpoint_timer = None
        await asyncio.gather(*(t for t in (self._writer, self._checkpointer) if t),
                             return_exceptions=True)
        if self._checkpoint_conn is not None:
            self._checkpoint_conn.close()
            self._checkpoint_conn = None
        for reader in (self._reader, self._bulk):
            if reader is not None:
                await reader.close()
        self._reader = self._bulk = None
        if self._writer_conn is not None:
            conn, self._writer_conn = self._writer_conn, None
            await asyncio.to_thread(_close_writer, conn.raw)

    @overload
    async def write(self, fn: Callable[..., Awaitable[T]], *args: Any,
                    batched: bool = False) -> T: ...

    @overload
    async def write(self, fn: Callable[..., T], *args: Any, batched: bool = False) -> T: ...

    async def write(self, fn: Callable[..., Any], *args: Any, batched: bool = False) -> Any:
        """Run `fn(connection, *args)` as one transaction (or savepoint of a group).

        `batched=True`: wait for the writer task, which commits every write queued
        meanwhile in one transaction. A commit writes each changed page to the WAL
        (~11 pages for a frame's record, ~90 us); records of frames arriving together
        share theirs. Writes that someone is waiting on (a node's next job) are not
        batched: they run at once, ahead of the queued ones, which are independent."""
        if not batched and not self._lent and not is_slow(fn):
            # The connection is free: write now, on the caller's turn of the loop.
            ok, value = _run_batch(self._connection(), [(fn, args)])[0]
            self.batches += 1
            self.batched_writes += 1
            self._maybe_checkpoint()
            if ok:
                return value
            raise value
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._queue.append((fn, args, future))
        self._start_writer()
        return await future

    def _connection(self) -> SQLiteConnection:
        assert self._writer_conn is not None, "database is not open"
        return self._writer_conn

    def _start_writer(self) -> None:
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain(), name="db-writer")

    def _maybe_checkpoint(self) -> None:
        """Copy the WAL into the database file at most once a second, on a worker
        thread with a connection of its own: writers go on meanwhile. The last writes
        of a burst are copied a second later: until a WAL is copied whole, every read
        looks its pages up in the WAL's index first."""
        if self._checkpoint_conn is None:
            return
        wait = self._last_checkpoint + self.CHECKPOINT_SECONDS - time.monotonic()
        busy = self._checkpointer is not None and not self._checkpointer.done()
        if wait > 0 or busy:
            if self._checkpoint_timer is None:
                self._checkpoint_timer = asyncio.get_running_loop().call_later(
                    max(wait, 0.1), self._checkpoint_later)
            return
        self._last_checkpoint = time.monotonic()
        self._checkpointer = asyncio.create_task(
            asyncio.to_thread(checkpoint, self._checkpoint_conn), name="db-checkpoint")

    def _checkpoint_later(self) -> None:
        self._checkpoint_timer = None
        self._maybe_checkpoint()

    async def _drain(self) -> None:
        conn = self._connection()
        while self._queue:
            await self._run_queued(conn)
            self._maybe_checkpoint()
            await asyncio.sleep(0)  # let the loop serve others between batches

    async def _lend(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn` on a worker thread with the writing connection; writes asked for
        meanwhile queue up and go together afterwards."""
        self._lent = True
        try:
            return await asyncio.to_thread(fn, *args)
        finally:
            self._lent = False

    async def _run_queued(self, conn: SQLiteConnection) -> None:
        # A slow write goes alone; quick ones go together, up to MAX_BATCH.
        slow = is_slow(self._queue[0][0])
        batch = [self._queue.popleft()]
        while not slow and self._queue and len(batch) < self.MAX_BATCH \
                and not is_slow(self._queue[0][0]):
            batch.append(self._queue.popleft())
        calls = [(fn, args) for fn, args, _ in batch]
        try:
            if slow:
                outcomes = await self._lend(_run_batch, conn, calls)
            else:
                outcomes = _run_batch(conn, calls)
        except BaseException as exc:  # the connection itself failed or was closed
            outcomes = [(False, exc)] * len(batch)
        self.batches += 1
        self.batched_writes += len(batch)
        for (_, _, future), (ok, value) in zip(batch, outcomes):
            if future.done():  # its caller gave up; the write happened anyway
                continue
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)

    @overload
    async def read(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T: ...

    @overload
    async def read(self, fn: Callable[..., T], *args: Any) -> T: ...

    async def read(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run `fn(connection, *args)` on the reading connection's thread."""
        assert self._reader is not None, "database is not open"
        return await self._reader.run(fn, *args)

    @overload
    async def read_bulk(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T: ...

    @overload
    async def read_bulk(self, fn: Callable[..., T], *args: Any) -> T: ...

    async def read_bulk(self, fn: Callable[..., Any], *args: Any) -> Any:
        """`read` on the big listings' own connection."""
        assert self._bulk is not None, "database is not open"
        return await self._bulk.run(fn, *args)

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        return await self.read(_fetchall, sql, tuple(params))

    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Row | None:
        return await self.read(_fetchone, sql, tuple(params))


def open_database(url: str, data_dir: Path) -> Database:
    """The database a `--database` URL names (not yet opened): "" is SQLite's
    brender.db in the data dir, `sqlite:///path` another file, `postgresql://...` a
    PostgreSQL database (several coordinators may share it)."""
    if not url:
        return Database(data_dir / "brender.db")
    if url.startswith("sqlite:///"):
        # sqlite:///relative/path, sqlite:////absolute/path
        return Database(Path(url[len("sqlite:///"):]))
    if url.startswith(("postgresql://", "postgres://")):
        from .pg_database import PostgresDatabase  # asyncpg: needed only here
        return PostgresDatabase(url)
    raise ValueError(f"--database: {url!r} is neither sqlite:///path nor postgresql://...")


def _fetchall(c: sqlite3.Connection, sql: str, params: tuple) -> list[sqlite3.Row]:
    return c.execute(sql, params).fetchall()


def _fetchone(c: sqlite3.Connection, sql: str, params: tuple) -> sqlite3.Row | None:
    row: sqlite3.Row | None = c.execute(sql, params).fetchone()
    return row


def _background_thread(conn: sqlite3.Connection) -> None:
    """The big listings' thread yields the CPU to the event loop (Linux: per thread)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 5)
    except (AttributeError, OSError):
        pass


def _close_writer(conn: sqlite3.Connection) -> None:
    checkpoint(conn)
    conn.close()


def _run_batch(conn: SQLiteConnection,
               calls: list[tuple[Callable[..., Any], tuple]]) -> list[tuple[bool, Any]]:
    """Run each call in a savepoint of one transaction; (ok, result or exception) each."""
    raw = conn.raw
    outcomes: list[tuple[bool, Any]] = []
    first = 0  # the first call of the transaction now open
    try:
        for i, (fn, args) in enumerate(calls):
            if not raw.in_transaction:
                raw.execute(conn.dialect.begin_write)
                first = i
            # A write alone in its transaction needs no savepoint: ROLLBACK undoes it.
            alone = len(calls) == 1
            if not alone:
                raw.execute("SAVEPOINT call")
            try:
                value = call(fn, conn, args)
                if not alone:
                    raw.execute("RELEASE call")
                outcomes.append((True, value))
            except Exception as exc:
                if raw.in_transaction and alone:
                    raw.execute("ROLLBACK")
                elif raw.in_transaction:
                    raw.execute("ROLLBACK TO call")
                    raw.execute("RELEASE call")
                else:
                    # SQLite rolled the whole transaction back (disk full, I/O error):
                    # the calls before this one in it are undone too.
                    _undo(outcomes, first, exc)
                outcomes.append((False, exc))
        if raw.in_transaction:
            try:
                raw.execute("COMMIT")
            except Exception as exc:
                # A failed COMMIT (disk full) leaves the transaction open.
                if raw.in_transaction:
                    raw.execute("ROLLBACK")
                _undo(outcomes, first, exc)
    except BaseException:
        # Not a store error: leave no transaction open behind us.
        if raw.in_transaction:
            raw.execute("ROLLBACK")
        raise
    return outcomes


def _undo(outcomes: list[tuple[bool, Any]], first: int, exc: Exception) -> None:
    for j in range(first, len(outcomes)):
        if outcomes[j][0]:
            outcomes[j] = (False, exc)
