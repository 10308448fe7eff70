"""PostgreSQL's side of the store contract: the connection adapter (asyncpg), the
pool, and what a lost server looks like to callers (`StoreUnavailable`).

Store SQL is written with `?` (dialect.py); it is rewritten to `$1, $2, ...` once
per statement text and cached. asyncpg prepares and caches each statement per
connection, so the per-frame statements are parsed once per pooled connection.
"""
from __future__ import annotations

import asyncio
from typing import Any, Iterable, Sequence

import asyncpg

from .connection import Row, StoreUnavailable
from .dialect import POSTGRESQL

# The server or the network went away: the statement did not run (or its
# transaction was rolled back); the call can be made again later.
_LOST = (asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
         asyncpg.CannotConnectNowError, asyncpg.AdminShutdownError,
         asyncpg.CrashShutdownError, OSError, asyncio.TimeoutError)
# Two transactions waited on each other's rows: the server undid one; run it again.
RETRYABLE = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError)

_SQL: dict[str, str] = {}


def sql(text: str) -> str:
    """Store SQL as asyncpg takes it (cached: the same texts come back all the time)."""
    out = _SQL.get(text)
    if out is None:
        if len(_SQL) > 4096:
            _SQL.clear()
        out = _SQL[text] = POSTGRESQL.sql(text)
    return out


def _count(status: str) -> int:
    """Rows changed, from a command tag ("UPDATE 3", "INSERT 0 1")."""
    last = status.rpartition(" ")[2]
    return int(last) if last.isdigit() else 0


class PostgresConnection:
    """`Connection` over one pooled asyncpg connection, inside the transaction (or
    not, for reads) its database facade opened."""

    __slots__ = ("raw", "shot_counts", "news")
    dialect = POSTGRESQL

    def __init__(self, raw: asyncpg.Connection):
        self.raw = raw
        # A batch of frame records collects its shots' counters here (store/frames.py).
        self.shot_counts: dict[int, tuple[int, float, int]] | None = None
        # A batch's NOTIFYs (channel, payload), sent together as it ends (frames.py).
        self.news: list[tuple[str, str]] | None = None

    async def execute(self, text: str, params: Sequence[Any] = ()) -> int:
        status = await self.raw.execute(sql(text), *params)
        return _count(status)

    async def executemany(self, text: str, params: Iterable[Sequence[Any]]) -> None:
        rows = list(params)
        if rows:
            await self.raw.executemany(sql(text), rows)

    async def fetchall(self, text: str, params: Sequence[Any] = ()) -> list[Row]:
        rows: list[Row] = await self.raw.fetch(sql(text), *params)
        return rows

    async def fetchone(self, text: str, params: Sequence[Any] = ()) -> Row | None:
        row: Row | None = await self.raw.fetchrow(sql(text), *params)
        return row

    async def fetchval(self, text: str, params: Sequence[Any] = ()) -> Any:
        return await self.raw.fetchval(sql(text), *params)


def _decode_numeric(text: str) -> int | float:
    """SUM and AVG of integers are `numeric` in PostgreSQL: numbers, as SQLite gives."""
    try:
        return int(text)
    except ValueError:
        return float(text)


async def _setup(raw: asyncpg.Connection) -> None:
    await raw.set_type_codec("numeric", schema="pg_catalog", encoder=str,
                             decoder=_decode_numeric, format="text")


async def _keep_session(raw: asyncpg.Connection) -> None:
    """A pooled connection goes back as it is (asyncpg still rolls back a transaction
    left open): store functions set no session state, take no advisory lock, LISTEN
    on none and keep no cursor past their transaction (farm_link.py's connection,
    which does, is not pooled). asyncpg's own reset was a round trip to the server
    at every release, one in eight of a frame's."""


async def create_pool(url: str, *, min_size: int = 2, max_size: int = 8) -> asyncpg.Pool:
    try:
        pool: asyncpg.Pool = await asyncpg.create_pool(
            url, min_size=min_size, max_size=max_size, init=_setup, reset=_keep_session,
            # Statements are few and fixed; keep them all prepared.
            statement_cache_size=512, command_timeout=60)
    except _LOST as exc:
        raise StoreUnavailable(f"cannot reach PostgreSQL: {exc}") from exc
    return pool


def unavailable(exc: BaseException) -> StoreUnavailable | None:
    """The `StoreUnavailable` this error means, or None for any other error."""
    if isinstance(exc, _LOST):
        return StoreUnavailable(f"PostgreSQL is unavailable: {exc}")
    return None
