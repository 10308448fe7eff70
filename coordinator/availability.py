"""Which connected nodes are inside their availability window; the farm hears when
that changes.

Each node's schedule (brender_protocol/schedule.py) is read in its own local time
(the `utc_offset` from its hello). The loop sleeps until the next boundary of any
connected node's schedule (at most a minute), or until poked: a schedule was edited,
a node connected.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Awaitable, Callable, Generic, Iterable, Protocol, TypeVar

from brender_protocol import schedule as rules

log = logging.getLogger("brender.availability")
LONGEST_SLEEP = 60.0


class Sleeper(Protocol):
    node: dict

    @property
    def asleep(self) -> bool: ...

    def set_asleep(self, asleep: bool) -> None: ...


S = TypeVar("S", bound=Sleeper)


class Availability(Generic[S]):
    def __init__(self, sessions: Iterable[S],
                 on_asleep: Callable[[S], Awaitable[None]], on_awake: Callable[[], None],
                 clock: Callable[[], float] = time.time):
        self.sessions = sessions
        self.on_asleep = on_asleep
        self.on_awake = on_awake
        self.clock = clock
        self._poked = asyncio.Event()

    def awake(self, node: dict, now: float | None = None) -> bool:
        return rules.is_awake(node.get("schedule"), self.clock() if now is None else now,
                              node.get("utc_offset") or 0)

    def has_boundaries(self, node: dict) -> bool:
        """Whether the node's schedule ever changes its state (not "always"/"never")."""
        return rules.next_change(node.get("schedule"), self.clock(),
                                 node.get("utc_offset") or 0) is not None

    def poke(self) -> None:
        self._poked.set()

    async def check(self, now: float | None = None) -> float:
        """Put to sleep and wake who crossed a boundary; seconds until the next one."""
        now = self.clock() if now is None else now
        woke = False
        fell: list[S] = []
        wait = LONGEST_SLEEP
        for session in list(self.sessions):
            awake = self.awake(session.node, now)
            if awake == session.asleep:
                session.set_asleep(not awake)
                if awake:
                    woke = True
                else:
                    fell.append(session)
            change = rules.next_change(session.node.get("schedule"), now,
                                       session.node.get("utc_offset") or 0)
            if change is not None:
                wait = min(wait, change - now)
        for session in fell:
            log.info("node %s is outside its availability window", session.node.get("name"))
            await self.on_asleep(session)
        if woke:
            self.on_awake()
        return max(0.5, wait)

    async def run(self) -> None:
        while True:
            self._poked.clear()  # before the check: a poke during it runs another
            try:
                wait = await self.check()
            except Exception as exc:  # a schedule looked at again soon beats a dead loop
                log.error("availability check failed (%s)", exc)
                wait = 5.0
            try:
                await asyncio.wait_for(self._poked.wait(), wait)
            except asyncio.TimeoutError:
                pass
