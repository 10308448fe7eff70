"""The event broker behind `/api/events`: publish once, fan out to every stream.

Events go into one shared log; each stream keeps its place in it. Publishing costs
the same with 3 streams or 3,000. Waiting streams are woken together, at most every
WAKE_SECONDS (longer with thousands of streams), with everything that arrived
meanwhile, WAKE_SLICE of them per turn of the loop so other requests are served in
between; pings go the same way. A stream whose reader stopped reading waits on its
socket and costs nothing until it falls LOG_LIMIT behind: then it is cancelled.
"""
from __future__ import annotations

import asyncio
import logging
from collections import Counter
from typing import Awaitable, Callable

import orjson

log = logging.getLogger("brender.events")

# About ten seconds of a 1,000-node farm's events (~2,000 a second, a few MB): a
# dashboard that falls further behind is cut loose and reloads.
LOG_LIMIT = 20_000
WAKE_SECONDS = 0.05
WAKE_SLICE = 100
BATCH = 1024


class Subscriber:
    def __init__(self, position: int, address: str, credential_id: str | None) -> None:
        self.position = position    # the sequence number of its next message
        self.address = address
        self.credential_id = credential_id  # who opened it (None: anonymous, farm token)
        self.ended = False          # its credential was revoked
        self.task = asyncio.current_task()


class EventBroker:
    def __init__(self) -> None:
        self._subscribers: set[Subscriber] = set()
        self._per_address: Counter[str] = Counter()
        self._log: list[bytes] = []
        self._base = 0              # the sequence number of _log[0]
        self._waiting: list[asyncio.Future] = []
        self._wake: asyncio.Handle | None = None
        self._closed = False
        self._dirty_shots: dict[int, bool] = {}
        self.published = 0
        # Called with every event, streams or not (webhooks hear shots end here).
        self.observers: list[Callable[[str, dict], None]] = []
        self.relay: Callable[[str, bytes], None] | None = None
        # Called when a first stream opens (coordinators relay events only to listeners).
        self.first_stream: Callable[[], None] = lambda: None

    @property
    def streams(self) -> int:
        return len(self._subscribers)

    def streams_from(self, address: str) -> int:
        return self._per_address[address]

    def subscribe(self, address: str = "", credential_id: str | None = None) -> Subscriber:
        sub = Subscriber(self._base + len(self._log), address, credential_id)
        self._subscribers.add(sub)
        if len(self._subscribers) == 1:
            self.first_stream()
        self._per_address[address] += 1
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        if sub in self._subscribers:
            self._subscribers.discard(sub)
            self._per_address[sub.address] -= 1
            if not self._per_address[sub.address]:
                del self._per_address[sub.address]

    def end_streams_of(self, credential_id: str) -> int:
        """End the streams a (revoked) credential opened, itself or with its tickets:
        each sends nothing more and closes. How many there were."""
        ending = [s for s in self._subscribers if s.credential_id == credential_id]
        for sub in ending:
            sub.ended = True
            self.unsubscribe(sub)
        if ending:
            self.ping()
        return len(ending)

    def publish(self, kind: str, data: dict, relay: bool = True) -> None:
        """`relay`: coordinators sharing the farm hear it too (farm_link.py); a shot as
        its id, whose summary each reads afresh."""
        self.published += 1
        for observe in self.observers:
            observe(kind, data)
        if relay and self.relay is not None:
            if kind == "shot":
                self.relay(kind, str(data["id"]).encode())
            else:
                encoded = orjson.dumps(data)
                self.relay(kind, encoded)
                if self._subscribers:
                    self._append(kind, encoded)
                return
        if not self._subscribers:
            return
        self._append(kind, orjson.dumps(data))

    def publish_encoded(self, kind: str, data: bytes) -> None:
        """An event another coordinator published (JSON already)."""
        self.published += 1
        if self._subscribers:
            self._append(kind, data)

    def _append(self, kind: str, data: bytes) -> None:
        self._log.append(b"event: " + kind.encode() + b"\ndata: " + data + b"\n\n")
        if len(self._log) > LOG_LIMIT:
            self._trim()
        if self._waiting and self._wake is None:
            delay = WAKE_SECONDS * max(1.0, len(self._subscribers) / 250)
            self._wake = asyncio.get_running_loop().call_later(delay, self._wake_waiting)

    def _trim(self) -> None:
        """Drop what every stream has sent, and what the slowest ones are too far behind
        on (they are cut loose: their next `take` ends them)."""
        head = self._base + len(self._log)
        oldest = min((s.position for s in self._subscribers), default=head)
        new_base = max(oldest, head - LOG_LIMIT // 2)
        del self._log[:new_base - self._base]
        self._base = new_base
        for sub in [s for s in self._subscribers if s.position < new_base]:
            # Its reader stopped reading (the stream waits on a full socket): end it.
            self.unsubscribe(sub)
            if sub.task is not None:
                sub.task.cancel()

    def ping(self) -> None:
        """Wake every waiting stream: those with nothing to send write a ping."""
        if self._wake is not None:
            self._wake.cancel()
        self._wake_waiting()

    def _wake_waiting(self) -> None:
        waiting, self._waiting = self._waiting, []
        self._wake_slices(waiting)

    def _wake_slices(self, waiting: list[asyncio.Future], start: int = 0) -> None:
        for future in waiting[start:start + WAKE_SLICE]:
            if not future.done():
                future.set_result(None)
        if start + WAKE_SLICE < len(waiting):
            self._wake = asyncio.get_running_loop().call_soon(
                self._wake_slices, waiting, start + WAKE_SLICE)
        else:
            self._wake = None

    def take(self, sub: Subscriber) -> list[bytes] | None:
        """The messages `sub` has not had yet (at most BATCH); None when it fell too far
        behind, its credential was revoked or the broker closed: the stream ends (and the
        dashboard reloads)."""
        if self._closed or sub.ended or sub.position < self._base:
            return None
        start = sub.position - self._base
        batch = self._log[start:start + BATCH]
        sub.position += len(batch)
        return batch

    async def next_batch(self, sub: Subscriber) -> bytes | None:
        """What `sub` has not had yet, waiting for something to arrive (b"" when woken
        by a ping); None when the stream must end."""
        if sub.position == self._base + len(self._log) and not self._closed \
                and not sub.ended:
            future = asyncio.get_running_loop().create_future()
            self._waiting.append(future)
            await future
        batch = self.take(sub)
        return None if batch is None else b"".join(batch)

    def shot_changed(self, shot_id: int, here: bool = True) -> None:
        """Shot summaries are costly; collect them and send at most a few per second.
        `here`: changed by this coordinator (else a peer said so: not relayed back)."""
        self._dirty_shots[shot_id] = here or self._dirty_shots.get(shot_id, False)

    async def flush_shots(self, load: Callable[[int], Awaitable[dict | None]],
                          interval: float = 0.25) -> None:
        while True:
            await asyncio.sleep(interval)
            dirty, self._dirty_shots = self._dirty_shots, {}
            for shot_id, here in dirty.items():
                try:
                    shot = await load(shot_id)
                except Exception as exc:  # the database is restarting: try again next time
                    log.warning("could not read shot %s for dashboards: %s", shot_id, exc)
                    self.shot_changed(shot_id, here)
                    continue
                self.publish("shot", shot or {"id": shot_id, "status": "deleted"}, here)

    async def ping_forever(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            self.ping()

    def close(self) -> None:
        self._closed = True
        self.ping()
