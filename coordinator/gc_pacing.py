"""The garbage collector, paced by the clock instead of by allocations.

A collection holds the event loop for as long as it walks, and nodes wait that long
for their next job. Python starts a young collection when allocations minus
deallocations pass a threshold. On a busy farm each node's pending objects (its
next message's reader, future, coroutine) are born as its previous ones die, so
that count hovers while the young generation grows; at 5,000 nodes one collection
every 10-15 s then walked all of it: 100-220 ms, and 120-210 ms more for the middle
generation. The collections found almost nothing: a few dozen objects each
(benchmarks/README.md, "fifth pass").

So the young generation is collected on a clock, each walk only what was born since
the last one (0.3 ms typically). What survives it is left alone until a full
collection every few minutes, which walks everything (about 0.6 s at 5,000 nodes),
so cyclic garbage still goes, at most that late. An allocation burst (a shot of
30,000 frames created) still starts young collections of its own.

What is loaded at start lives forever and is frozen out of every walk.
"""
from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import AsyncIterator

from aiohttp import web

log = logging.getLogger("brender.gc")

YOUNG_EVERY = 0.1
FULL_EVERY = 300.0
BURST = 700        # Python's default threshold for the young generation
NEVER = 1 << 30    # the older generations wait for `Pacer`'s full collection


def tune_at_start() -> None:
    """Freeze what is loaded now; older generations wait for `Pacer`'s full collections."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(BURST, NEVER, NEVER)


class Pacer:
    """Collects the young generation every `young_every` s, everything every `full_every` s."""

    def __init__(self, young_every: float = YOUNG_EVERY, full_every: float = FULL_EVERY):
        self.young_every, self.full_every = young_every, full_every

    async def run(self) -> None:
        next_full = time.monotonic() + self.full_every
        while True:
            await asyncio.sleep(self.young_every)
            if time.monotonic() < next_full:
                gc.collect(0)
                continue
            started = time.perf_counter()
            freed = gc.collect()
            log.info("full garbage collection: %d objects freed, the loop held %.0f ms",
                     freed, (time.perf_counter() - started) * 1000)
            next_full = time.monotonic() + self.full_every


async def pacing_ctx(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx for the coordinator process (not for an app embedded in tests: the
    collector's settings are the whole process's)."""
    task = asyncio.create_task(Pacer().run(), name="gc pacing")
    yield
    task.cancel()
