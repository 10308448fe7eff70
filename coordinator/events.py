"""The event broker behind `/api/events`: publish once, fan out to every stream."""
from __future__ import annotations

import asyncio
from typing import Awaitable, Callable

import orjson

# About ten seconds of a 1,000-node farm's events (~2,000 a second, a few MB): a
# dashboard that falls further behind is cut loose and reloads.
QUEUE_LIMIT = 20_000


class Subscriber:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue(QUEUE_LIMIT)


class EventBroker:
    def __init__(self) -> None:
        self._subscribers: set[Subscriber] = set()
        self._dirty_shots: set[int] = set()
        self.published = 0

    def subscribe(self) -> Subscriber:
        sub = Subscriber()
        self._subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self._subscribers.discard(sub)

    def publish(self, kind: str, data: dict) -> None:
        self.published += 1
        if not self._subscribers:
            return
        message = b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"
        for sub in list(self._subscribers):
            try:
                sub.queue.put_nowait(message)
            except asyncio.QueueFull:
                # A reader this far behind reloads anyway: cut it loose.
                self._subscribers.discard(sub)
                sub.queue = asyncio.Queue(1)
                sub.queue.put_nowait(None)

    def shot_changed(self, shot_id: int) -> None:
        """Shot summaries are costly; collect them and send at most a few per second."""
        self._dirty_shots.add(shot_id)

    async def flush_shots(self, load: Callable[[int], Awaitable[dict | None]],
                          interval: float = 0.25) -> None:
        while True:
            await asyncio.sleep(interval)
            dirty, self._dirty_shots = self._dirty_shots, set()
            for shot_id in dirty:
                shot = await load(shot_id)
                self.publish("shot", shot or {"id": shot_id, "status": "deleted"})

    def close(self) -> None:
        for sub in list(self._subscribers):
            try:
                sub.queue.put_nowait(None)
            except asyncio.QueueFull:
                pass
        self._subscribers.clear()
