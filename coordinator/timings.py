"""Recent durations and their percentiles: dispatch latency and event-loop lag,
as `GET /api/farm` reports them."""
from __future__ import annotations

import asyncio
import time
from collections import deque


class Timings:
    """Durations (seconds) with the moment each was taken; the last `keep` of them."""

    def __init__(self, keep: int = 50_000):
        self._samples: deque[tuple[float, float]] = deque(maxlen=keep)

    def add(self, seconds: float, when: float | None = None) -> None:
        self._samples.append((time.monotonic() if when is None else when, seconds))

    def summary(self, window: float = 60.0) -> dict:
        """Count, p50, p99 and max over the last `window` seconds, in milliseconds."""
        since = time.monotonic() - window
        recent = sorted(value for when, value in self._samples if when >= since)

        def ms(value: float) -> float:
            return round(1000 * value, 2)

        def pick(q: float) -> float | None:
            return ms(recent[min(len(recent) - 1, int(q * len(recent)))]) if recent else None
        return {"samples": len(recent), "p50_ms": pick(0.50), "p99_ms": pick(0.99),
                "max_ms": ms(recent[-1]) if recent else None}


async def watch_loop_lag(lag: Timings, period: float = 0.01) -> None:
    """How late the event loop wakes a timer: a message from a node waits about as
    long before the coordinator reads it. Near zero on an idle farm; tens of ms mean
    the coordinator is the farm's bottleneck."""
    while True:
        asked = time.monotonic()
        await asyncio.sleep(period)
        now = time.monotonic()
        lag.add(max(0.0, now - asked - period), now)
