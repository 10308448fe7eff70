"""Work asked while a write runs goes together in the next one; each caller still gets
its own result (or error) once that write commits.

Two uses: the audit log's rows (a row per mutating call, one per frame upload on a
busy farm: one `executemany` for the rows of calls answered together), and claims on
PostgreSQL (scheduler.py: a claim counts the nodes on each shot, so a coordinator's
claims take turns; those asked meanwhile share one transaction and its counts instead
of each waiting out the round trips of every claim ahead of it).
"""
from __future__ import annotations

import asyncio
from collections import deque
from typing import Awaitable, Callable, Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class Batches(Generic[Item, Result]):
    """`add(item)` queues; a task runs `run(items)` (a result per item) for what is
    queued, up to `limit` by `weight`; up to `runners` such tasks run side by side, so
    a batch that waits on the database does not hold back what queued behind it. A
    batch that raises is run again an item at a time, so a bad item fails only its
    own caller. `orphaned(item, result)` settles what was done for a caller that went
    away meanwhile."""

    def __init__(self, run: Callable[[list[Item]], Awaitable[list[Result]]], limit: int,
                 weight: Callable[[Item], int] = lambda item: 1,
                 orphaned: Callable[[Item, Result], Awaitable[None]] | None = None,
                 runners: int = 1):
        self._run = run
        self._limit = limit
        self._weight = weight
        self._orphaned = orphaned
        self._queued: deque[tuple[Item, asyncio.Future]] = deque()
        self._runners: set[asyncio.Task] = set()
        self._most_runners = runners
        self.runs = 0

    async def add(self, item: Item) -> Result:
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._queued.append((item, future))
        # A runner that has ended may still be in the set until its callback runs.
        if sum(not r.done() for r in self._runners) < self._most_runners:
            runner = asyncio.create_task(self._run_queued(), name="batches")
            self._runners.add(runner)
            runner.add_done_callback(self._runners.discard)
        result: Result = await future
        return result

    def _next_batch(self) -> list[tuple[Item, asyncio.Future]]:
        batch = [self._queued.popleft()]
        weight = self._weight(batch[0][0])
        while self._queued and weight + self._weight(self._queued[0][0]) <= self._limit:
            weight += self._weight(self._queued[0][0])
            batch.append(self._queued.popleft())
        return batch

    async def _run_queued(self) -> None:
        while self._queued:
            batch = self._next_batch()
            self.runs += 1
            try:
                results = await self._run([item for item, _ in batch])
            except Exception as exc:
                if len(batch) == 1:
                    await self._settle(*batch[0], exc)
                    continue
                for item, future in batch:   # each alone: it breaks only itself
                    try:
                        [result] = await self._run([item])
                    except Exception as alone:
                        await self._settle(item, future, alone)
                    else:
                        await self._settle(item, future, result)
                continue
            for (item, future), result in zip(batch, results):
                await self._settle(item, future, result)

    async def _settle(self, item: Item, future: asyncio.Future,
                      outcome: Result | BaseException) -> None:
        if not future.done():
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
        elif self._orphaned is not None and not isinstance(outcome, BaseException):
            await self._orphaned(item, outcome)
