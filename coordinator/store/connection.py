"""The contract between store functions and a database backend.

A store function is `async def fn(c: Connection, *args)`. It runs inside the
transaction (or savepoint) its backend opened for it, asks only for what
`Connection` offers, reads rows by column name, and takes any SQL that differs
between databases from `c.dialect`. The SQLite backend's awaits never suspend, so
it drives a store coroutine to its end at once (`run_sync`) on the thread that holds
the connection: a write in the caller's turn of the event loop, with no thread hop.
A PostgreSQL backend (asyncpg) awaits the same coroutines for real.
"""
from __future__ import annotations

import inspect
from typing import Any, Callable, Coroutine, Iterable, Protocol, Sequence, TypeVar

from .dialect import Dialect

T = TypeVar("T")


class Row(Protocol):
    """A result row: `row["column"]` and `dict(row)` (SQLite's Row, asyncpg's Record)."""

    def __getitem__(self, key: str, /) -> Any: ...

    def keys(self) -> Iterable[str]: ...


class Connection(Protocol):
    dialect: Dialect

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; the number of rows it changed."""

    async def executemany(self, sql: str, params: Iterable[Sequence[Any]]) -> None:
        """Run one statement once per parameter sequence."""

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Every row of a query (or of a statement's `RETURNING`)."""

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        """The first row, or None."""

    async def fetchval(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """The first column of the first row, or None when there is no row."""


class StoreUnavailable(RuntimeError):
    """The database server cannot be reached now (restarting, network): the write or
    read did not happen, and the same call may succeed later (HTTP 503)."""


class Suspended(RuntimeError):
    """A store coroutine awaited something that really waits: on a connection whose
    awaits never suspend that is a bug (an `asyncio.sleep`, a lock, another backend)."""


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Drive a coroutine that never suspends to its end, here and now."""
    try:
        coro.send(None)
    except StopIteration as done:
        value: T = done.value
        return value
    name = getattr(coro, "__qualname__", repr(coro))
    coro.close()
    raise Suspended(f"{name} suspended on a connection that never waits")


def is_store_function(fn: Callable[..., Any]) -> bool:
    """An `async def` store function (else a plain function of the backend's own
    connection: tests and SQLite-only maintenance)."""
    code = getattr(fn, "__code__", None)   # a plain function: its flag, 3x faster
    if code is not None:
        return bool(code.co_flags & inspect.CO_COROUTINE)
    return inspect.iscoroutinefunction(fn)


def slow(fn: Callable[..., T]) -> Callable[..., T]:
    """Marks a store function that may touch a whole shot's rows (create, delete,
    cancel): the SQLite backend runs it on a worker thread instead of the event loop."""
    fn.slow = True  # type: ignore[attr-defined]
    return fn


def is_slow(fn: Callable[..., Any]) -> bool:
    return getattr(fn, "slow", False)


def one_statement(fn: Callable[..., T]) -> Callable[..., T]:
    """Marks a store function that runs exactly one statement, which is atomic alone:
    the PostgreSQL backend runs it without BEGIN and COMMIT, two round trips fewer."""
    fn.one_statement = True  # type: ignore[attr-defined]
    return fn


def is_one_statement(fn: Callable[..., Any]) -> bool:
    return getattr(fn, "one_statement", False)
