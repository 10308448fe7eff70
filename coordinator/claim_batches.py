"""Claims where the database runs writes side by side (PostgreSQL): one transaction
at a time, and the claims asked meanwhile go together in the next one.

A claim counts how many nodes render each shot (caps, fair share). Two claims of one
coordinator in two transactions would each count before the other commits, so they
take turns; waiting for a turn one claim at a time cost each node every claim ahead
of it (a dozen round trips each). Together, a busy farm's nodes share one commit
and one set of counts. Claims on other coordinators lock the capped shots they count
(store/claims.py).
"""
from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from .database import Database
from .store import claims as claim_sql

log = logging.getLogger("brender.dispatch")

Outcome = tuple[claim_sql.Finished | None, list[claim_sql.Assignment | None]]


@dataclass
class _Asked:
    request: claim_sql.ClaimRequest
    future: asyncio.Future = field(repr=False)

    @property
    def nodes(self) -> int:
        return len(self.request[0])


class ClaimBatches:
    """`claim` queues; one task claims for everything queued, `MAX_NODES` at a time.
    `settings()` gives the claim settings after the nodes (store/claims.claim_batch);
    `orphaned(request, outcome)` settles what was done for a caller that went away
    (its finished job, the jobs claimed for it)."""

    MAX_NODES = 128

    def __init__(self, db: Database, settings: Callable[[], tuple[Any, ...]],
                 orphaned: Callable[[claim_sql.ClaimRequest, Outcome], Awaitable[None]]):
        self.db = db
        self._settings = settings
        self._orphaned = orphaned
        self._asked: deque[_Asked] = deque()
        self._claimer: asyncio.Task | None = None
        self.batches = 0

    async def claim(self, request: claim_sql.ClaimRequest) -> Outcome:
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._asked.append(_Asked(request, future))
        if self._claimer is None or self._claimer.done():
            self._claimer = asyncio.create_task(self._claim_queued(), name="claims")
        result: Outcome = await future
        return result

    async def _claim_queued(self) -> None:
        while self._asked:
            batch = [self._asked.popleft()]
            nodes = batch[0].nodes
            while self._asked and nodes + self._asked[0].nodes <= self.MAX_NODES:
                nodes += self._asked[0].nodes
                batch.append(self._asked.popleft())
            self.batches += 1
            try:
                outcomes = await self.db.write(claim_sql.claim_batch,
                                               [a.request for a in batch], *self._settings())
            except Exception as exc:
                if len(batch) == 1:
                    await self._answer(batch[0], exc)
                    continue
                # One claim's data broke the batch: each alone, so it breaks only itself.
                for asked in batch:
                    try:
                        outcome = (await self.db.write(claim_sql.claim_batch, [asked.request],
                                                       *self._settings()))[0]
                    except Exception as alone:
                        outcome = alone
                    await self._answer(asked, outcome)
                continue
            for asked, outcome in zip(batch, outcomes):
                await self._answer(asked, outcome)

    async def _answer(self, asked: _Asked, outcome: Outcome | BaseException) -> None:
        if not asked.future.done():
            if isinstance(outcome, BaseException):
                asked.future.set_exception(outcome)
            else:
                asked.future.set_result(outcome)
            return
        if not isinstance(outcome, BaseException):
            await self._orphaned(asked.request, outcome)
