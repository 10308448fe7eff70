"""Rows of one kind written together, each caller still waiting for its row's commit.

The audit log gets a row for every mutating call: one per frame upload on a busy farm.
Written as a write of its own (or a savepoint in a batch) each costs the database two
or three round trips; rows queued while a write runs go in the next one, as one
statement (`executemany`).
"""
from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, Awaitable, Callable

from .database import Database

WriteMany = Callable[..., Awaitable[Any]]   # store function: (connection, rows)


class RowBatches:
    MAX_ROWS = 500

    def __init__(self, db: Database, write_many: WriteMany):
        self.db = db
        self._write_many = write_many
        self._rows: deque[tuple[tuple, asyncio.Future]] = deque()
        self._writer: asyncio.Task | None = None
        self.writes = 0

    async def add(self, row: tuple) -> None:
        """Queue `row`; returns once it is committed (raises what its write raised)."""
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._rows.append((row, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_queued(), name="row-batches")
        await future

    async def _write_queued(self) -> None:
        while self._rows:
            batch = [self._rows.popleft()
                     for _ in range(min(self.MAX_ROWS, len(self._rows)))]
            self.writes += 1
            try:
                await self.db.write(self._write_many, [row for row, _ in batch])
            except Exception:
                # One row spoilt the statement: each alone, so it fails only itself.
                for row, future in batch:
                    try:
                        await self.db.write(self._write_many, [row])
                    except Exception as exc:
                        _settle(future, exc)
                    else:
                        _settle(future, None)
                continue
            for _, future in batch:
                _settle(future, None)


def _settle(future: asyncio.Future, exc: BaseException | None) -> None:
    if future.done():
        return
    if exc is None:
        future.set_result(None)
    else:
        future.set_exception(exc)
