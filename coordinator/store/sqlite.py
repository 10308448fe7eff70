"""SQLite's side of the store contract: the connection adapter, how connections are
opened, and the threads that reading connections live on."""
from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence, TypeVar

from .connection import Row, is_store_function, run_sync
from .dialect import SQLITE

T = TypeVar("T")

_COMMON = ("busy_timeout=5000", "temp_store=MEMORY")
# Page caches, in KiB. The writer's stays valid (nobody else writes) and keeps the hot
# indexes; a reader's is emptied whenever the database changed since its last read (a
# WAL reader re-reads changed pages: the OS caches the file), so a big one only holds
# memory: three 32 MB caches were ~30 MB of a 5,000-node coordinator's RSS.
WRITER_CACHE_KIB = 16_000
READER_CACHE_KIB = 4_000
# The writer never checkpoints by itself (a checkpoint syncs the disk): Database does.
WRITER_PRAGMAS = ("journal_mode=WAL", "foreign_keys=ON", "synchronous=NORMAL") + _COMMON \
    + ("wal_autocheckpoint=0", f"cache_size=-{WRITER_CACHE_KIB}")
READER_PRAGMAS = ("query_only=ON",) + _COMMON + (f"cache_size=-{READER_CACHE_KIB}",)


class SQLiteConnection:
    """`Connection` over a `sqlite3.Connection`. Every await completes at once: a
    statement takes 0.1-0.3 ms of SQLite, less than handing it to a thread would."""

    __slots__ = ("raw",)
    dialect = SQLITE

    def __init__(self, raw: sqlite3.Connection):
        self.raw = raw

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self.raw.execute(sql, params).rowcount

    async def executemany(self, sql: str, params: Iterable[Sequence[Any]]) -> None:
        self.raw.executemany(sql, params)

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return self.raw.execute(sql, params).fetchall()

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        row: Row | None = self.raw.execute(sql, params).fetchone()
        return row

    async def fetchval(self, sql: str, params: Sequence[Any] = ()) -> Any:
        row = self.raw.execute(sql, params).fetchone()
        return None if row is None else row[0]


def call(fn: Callable[..., Any], conn: SQLiteConnection, args: tuple) -> Any:
    """Run a store function (driven to its end at once), or a plain function of the
    `sqlite3.Connection` itself."""
    if is_store_function(fn):
        return run_sync(fn(conn, *args))
    return fn(conn.raw, *args)


def connect(path: Path, pragmas: Iterable[str], *, shared: bool = False) -> SQLiteConnection:
    """`shared`: the connection may be used from a thread other than its opener's
    (one thread at a time)."""
    raw = sqlite3.connect(path, isolation_level=None, check_same_thread=not shared)
    raw.row_factory = sqlite3.Row
    for pragma in pragmas:
        raw.execute(f"PRAGMA {pragma}")
    return SQLiteConnection(raw)


def checkpoint(raw: sqlite3.Connection) -> None:
    """Copy committed pages from the WAL into the database file (never waits for
    readers; what they still use is copied next time)."""
    try:
        raw.execute("PRAGMA wal_checkpoint(PASSIVE)")
    except sqlite3.Error:
        pass  # disk full or busy: the WAL keeps the data; the next one tries again


class Reader:
    """A reading connection on a thread of its own, running calls in order.

    WAL mode: a read never waits for the writer, and the writer never for a read."""

    def __init__(self, path: Path, name: str):
        self._calls: queue.SimpleQueue[tuple[asyncio.Future, Callable[..., Any], tuple] | None] \
            = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, args=(path,), name=name,
                                        daemon=True)
        self._opened: asyncio.Future | None = None

    async def open(self) -> None:
        self._opened = asyncio.get_running_loop().create_future()
        self._thread.start()
        await self._opened

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._calls.put((future, fn, args))
        result: T = await future
        return result

    async def close(self) -> None:
        if self._thread.is_alive():
            self._calls.put(None)
            await asyncio.to_thread(self._thread.join)

    def _serve(self, path: Path) -> None:
        assert self._opened is not None
        opened = self._opened
        loop = opened.get_loop()
        try:
            conn = connect(path, READER_PRAGMAS)
        except BaseException as exc:
            loop.call_soon_threadsafe(_settle, opened, False, exc)
            return
        loop.call_soon_threadsafe(_settle, opened, True, None)
        try:
            while (item := self._calls.get()) is not None:
                future, fn, args = item
                try:
                    value, ok = call(fn, conn, args), True
                except BaseException as exc:
                    value, ok = exc, False
                loop.call_soon_threadsafe(_settle, future, ok, value)
        finally:
            conn.raw.close()


def _settle(future: asyncio.Future, ok: bool, value: Any) -> None:
    if future.done():  # its caller gave up
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


def tables(raw: sqlite3.Connection) -> list[str]:
    """The farm's tables (not SQLite's own), in the order they were made."""
    return [r[0] for r in raw.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
        "ORDER BY rowid")]


def table_pages(raw: sqlite3.Connection, table: str, columns: list[str],
                size: int = 2000) -> Iterator[list[tuple]]:
    """Every row of `table` (those columns), `size` rows at a time."""
    cursor = raw.execute(f"SELECT {', '.join(columns)} FROM {table}")
    while page := cursor.fetchmany(size):
        yield [tuple(r) for r in page]


def id_sequences(raw: sqlite3.Connection) -> dict[str, int]:
    """The last id AUTOINCREMENT gave in each table (ids never given again)."""
    try:
        return {r[0]: r[1] for r in raw.execute("SELECT name, seq FROM sqlite_sequence")}
    except sqlite3.OperationalError:
        return {}


def column_names(raw: sqlite3.Connection, table: str) -> list[str]:
    return [d[0] for d in raw.execute(f"SELECT * FROM {table} LIMIT 0").description]


def row_count(raw: sqlite3.Connection, table: str) -> int:
    return int(raw.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
