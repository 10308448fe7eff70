"""A connected node's channel and what it is doing; every change of that is made here.

A session is waiting (it holds nothing and has not asked for work), ready (it asked
and holds nothing), or holds one attempt. Only the methods below move it between
these, and each one tells dashboards through `on_change`: a node whose attempt ended
any way (done, failed, cancelled, deleted, lost) cannot be left looking busy, or
ignored when it asks for its next job. (`claiming` and `dispatched_at` are the
scheduler's own bookkeeping, not the node's state.) `ConnectedNodes` holds the session
of each node connected now. Only the farm service (coordinator/service.py and its
parts) calls these methods.
"""
from __future__ import annotations

import time
from collections import Counter
from typing import Callable, Iterator

import orjson
from aiohttp import web

from .matching import Offer, farm_series, offer_of

PROGRESS_EVERY = 0.5  # seconds: progress comes many times a second; dashboards hear two


class NodeSession:
    # A farm holds thousands: no per-session __dict__.
    __slots__ = ("node", "ws", "_on_change", "_on_kind_change", "_ready", "_attempt_id",
                 "_job_id", "_shot_id", "_progress", "_progress_told", "_asleep", "offer",
                 "claiming", "heard", "pinged", "dispatched_at")

    def __init__(self, node: dict, ws: web.WebSocketResponse,
                 on_change: Callable[[NodeSession], None],
                 on_kind_change: Callable[[], None] = lambda: None):
        self.node = node
        self.ws = ws
        self._on_change = on_change
        self._on_kind_change = on_kind_change   # its offer, enabled or asleep changed
        self._ready = False
        self._attempt_id: str | None = None
        self._job_id: int | None = None
        self._shot_id: int | None = None
        self._progress: dict | None = None
        self._progress_told = 0.0
        self._asleep = False
        self.offer: Offer = offer_of(node)  # what the claim matches shots against
        self.claiming = False  # a claim for this node is in flight
        # When the channel last brought anything (liveness.py) and when it was last
        # pinged for being quiet (time.monotonic()).
        self.heard = time.monotonic()
        self.pinged = 0.0
        # Since when this node has waited for a job while there was work; None while the
        # queue had nothing for it.
        self.dispatched_at: float | None = time.monotonic()

    @property
    def node_id(self) -> str:
        return self.node["id"]

    @property
    def ready(self) -> bool:
        return self._ready

    @property
    def attempt_id(self) -> str | None:
        return self._attempt_id

    @property
    def job_id(self) -> int | None:
        return self._job_id

    @property
    def shot_id(self) -> int | None:
        return self._shot_id

    @property
    def progress(self) -> dict | None:
        return self._progress

    @property
    def asleep(self) -> bool:
        """Outside its availability window (coordinator/availability.py)."""
        return self._asleep

    @property
    def takes_work(self) -> bool:
        """Whether a claim may be made for this node now."""
        return self._ready and self._attempt_id is None and not self.claiming \
            and self.node["enabled"] and not self._asleep and not self.ws.closed

    # -- the state changes --------------------------------------------------------
    def _set(self, ready: bool, attempt_id: str | None = None, job_id: int | None = None,
             shot_id: int | None = None) -> None:
        self._ready = ready
        self._attempt_id, self._job_id, self._shot_id = attempt_id, job_id, shot_id
        self._progress = None
        self._on_change(self)

    def wants_work(self) -> None:
        """The node said it is ready: it holds nothing and waits for a job."""
        self._set(ready=True)
        self.dispatched_at = time.monotonic()

    def assigned(self, attempt_id: str, job_id: int, shot_id: int) -> None:
        """The node holds this attempt: just given to it, or resumed after a reconnect."""
        self._set(False, attempt_id, job_id, shot_id)

    def released(self, attempt_id: str) -> bool:
        """The attempt ended without the node asking for more (it failed, was cancelled,
        handed back or lost): the node holds nothing and gets its next job when it says
        it is ready. False when the node no longer held that attempt."""
        if self._attempt_id != attempt_id:
            return False
        self._set(ready=False)
        return True

    def progressed(self, progress: dict) -> bool:
        """The attempt's render progress; True when dashboards were told (at most twice
        a second)."""
        self._progress = progress
        now = time.monotonic()
        if now - self._progress_told < PROGRESS_EVERY:
            return False
        self._progress_told = now
        self._on_change(self)
        return True

    def set_enabled(self, enabled: bool) -> None:
        self.node["enabled"] = enabled
        self._on_kind_change()
        self._on_change(self)

    def set_asleep(self, asleep: bool) -> None:
        if asleep != self._asleep:
            self._asleep = asleep
            self._on_kind_change()
        self._on_change(self)

    def edited(self, node: dict) -> None:
        """An admin changed the node's tags or schedule."""
        self.node = node
        self.offer = offer_of(node)
        self._on_kind_change()
        self._on_change(self)

    # -- the channel ----------------------------------------------------------------
    async def send(self, message: dict) -> bool:
        """Send a message (encoding errors raise: the caller's data is at fault)."""
        return await self.send_text(orjson.dumps(message).decode())

    async def send_text(self, text: str) -> bool:
        """Send an encoded message; False when the channel is gone."""
        if self.ws.closed:
            return False
        try:
            await self.ws.send_str(text)
            return True
        except (ConnectionError, RuntimeError):
            return False


class ConnectedNodes:
    """The session of each node connected now, by node id."""

    def __init__(self, on_change: Callable[[NodeSession], None]):
        self._by_id: dict[str, NodeSession] = {}
        self._on_change = on_change
        # How many connected nodes offer each Blender series, kept as nodes come and
        # go: every claim asks, and recounting 5,000 nodes' versions after each of a
        # farm's reconnecting nodes made its connection storm quadratic.
        self._series_count: Counter[tuple[int, ...]] = Counter()
        self._series_of: dict[str, frozenset[tuple[int, ...]]] = {}
        self._series: frozenset[tuple[int, ...]] | None = None
        # Bumped when a node comes, goes, or changes its offer, enabled or asleep: what
        # the kinds of nodes (waiting.py) are made of, recounted only then.
        self.kinds_generation = 0

    def _kinds_changed(self) -> None:
        self.kinds_generation += 1

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self) -> Iterator[NodeSession]:
        return iter(self._by_id.values())

    def farm_series(self) -> frozenset[tuple[int, ...]]:
        """The Blender major.minor series the connected nodes offer between them."""
        if self._series is None:
            self._series = frozenset(self._series_count)
        return self._series

    def _count_series(self, node_id: str, offer: Offer | None) -> None:
        """The node's series replace what it counted before (None: it left)."""
        old = self._series_of.pop(node_id, frozenset())
        new = farm_series([offer]) if offer is not None else frozenset()
        if offer is not None:
            self._series_of[node_id] = new
        if old != new:
            self._series_count.subtract(old)
            self._series_count.update(new)
            self._series_count = +self._series_count   # drop series nobody offers now
            self._series = None

    def get(self, node_id: str | None) -> NodeSession | None:
        return self._by_id.get(node_id or "")

    def connect(self, node: dict, ws: web.WebSocketResponse,
                ) -> tuple[NodeSession, NodeSession | None]:
        """A node's new channel; returns it and the channel it replaces, if any."""
        session = NodeSession(node, ws, self._on_change, self._kinds_changed)
        old = self._by_id.get(session.node_id)
        self.kinds_generation += 1
        self._by_id[session.node_id] = session
        self._count_series(session.node_id, session.offer)
        self._on_change(session)
        return session, old

    def disconnect(self, session: NodeSession) -> None:
        """The channel closed; a newer channel of the same node stays."""
        if self._by_id.get(session.node_id) is session:
            del self._by_id[session.node_id]
            self.kinds_generation += 1
            self._count_series(session.node_id, None)
            self._on_change(session)

    def release(self, attempt_id: str, node_id: str | None = None) -> None:
        """The attempt no longer holds its job: the node that held it holds nothing."""
        holders = [self._by_id.get(node_id)] if node_id else list(self._by_id.values())
        for session in holders:
            if session is not None and session.released(attempt_id):
                return
