"""Time limits for request bodies: a minimum average rate and a total time.

An upload that stalls would otherwise hold its handler, its socket and the part of
its body already received (up to the in-memory limit, megabytes) for as long as the
client keeps the connection open.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import AsyncIterator


class TooSlow(Exception):
    pass


@dataclass(frozen=True)
class Pace:
    min_rate: float     # bytes per second, on average
    stall: float        # seconds of credit: no body gets further behind the rate
    total: float        # seconds for a whole body


DEFAULT_PACE = Pace(min_rate=16 * 1024, stall=30.0, total=3600.0)


async def paced(chunks: AsyncIterator[bytes], pace: Pace) -> AsyncIterator[bytes]:
    """Yield `chunks`; TooSlow once the body falls `pace.stall` seconds behind
    `pace.min_rate` (a silent client: `stall` seconds after its last byte, at most)
    or takes longer than `pace.total` in all."""
    loop = asyncio.get_running_loop()
    now = loop.time()
    end = now + pace.total
    deadline = now + pace.stall
    source = chunks.__aiter__()
    while True:
        try:
            async with asyncio.timeout_at(min(deadline, end)):
                chunk = await source.__anext__()
        except StopAsyncIteration:
            return
        except TimeoutError:
            if deadline < end:
                raise TooSlow(f"the body came slower than {pace.min_rate / 1024:g} KiB/s "
                              f"for {pace.stall:g} s") from None
            raise TooSlow(f"the body took longer than {pace.total:g} s") from None
        now = loop.time()
        deadline = min(now + pace.stall, deadline + len(chunk) / pace.min_rate)
        yield chunk
