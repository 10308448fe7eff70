"""Which node channels are alive: one sweep over every channel, not a timer per socket.

A channel is alive while the coordinator hears from it: any message, the node's
`heartbeat` (every `heartbeat_interval`, told in the welcome), a pong. A channel quiet
for all but the last of `SILENT_INTERVALS` intervals is pinged once (a node that sends
no heartbeat answers with a pong: the last interval is its time to); one quiet for all
of them is closed, so its lease stops being renewed and runs out (reaper.py), and its
job is requeued. brender-node beats every interval, so it is never pinged.

aiohttp's own heartbeat (`heartbeat=` on the WebSocketResponse) did this with a ping
timer per socket, rescheduled on every message received, and a pong wait of half an
interval: at 5,000 nodes 10-20 % of the coordinator's time, and on a loaded machine
pongs a few seconds late dropped healthy nodes.
"""
from __future__ import annotations

import asyncio
import logging
import time

from aiohttp import WSCloseCode

from .sessions import ConnectedNodes

log = logging.getLogger("brender.nodes")

# Heartbeat intervals a channel may stay silent before it counts as dead: a node beats
# once an interval, so two missed beats and an unanswered ping.
SILENT_INTERVALS = 3
QUIET_INTERVALS = SILENT_INTERVALS - 1   # then it is pinged


class ChannelWatch:
    def __init__(self, sessions: ConnectedNodes, interval: float):
        self.sessions = sessions
        self.interval = interval
        self._closing: set[asyncio.Task] = set()

    async def run(self) -> None:
        while True:
            await asyncio.sleep(min(1.0, self.interval / 4))
            try:
                await self.sweep(time.monotonic())
            except Exception:
                log.exception("channel sweep failed")

    async def sweep(self, now: float) -> int:
        """Ping the channels quiet for a while, close the silent ones; returns how
        many were closed."""
        quiet_since = now - self.interval * QUIET_INTERVALS
        dead_since = now - self.interval * SILENT_INTERVALS
        closed = 0
        for session in list(self.sessions):
            heard = session.heard
            if heard > quiet_since or session.ws.closed:
                continue
            if heard <= dead_since:
                log.warning("node %s (%s) silent for %.0f s; closing its channel",
                            session.node["name"], session.node_id, now - heard)
                # close() marks the channel closed at once (the reaper stops renewing
                # its lease); then it waits for the node's answer: not in this loop.
                task = asyncio.create_task(session.ws.close(
                    code=WSCloseCode.GOING_AWAY, message=b"node silent"))
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)
                closed += 1
            elif session.pinged < heard:
                session.pinged = now
                try:
                    await session.ws.ping()
                except (ConnectionError, RuntimeError):
                    pass  # the channel is closing; its handler ends it
        return closed
