"""The lease reaper: renews the leases that connected nodes' channels hold and requeues
the others once they run out (`--lease-timeout`)."""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable

from .config import Config
from .database import Database
from .outcomes import Outcomes
from .sessions import ConnectedNodes
from .store import jobs as job_sql
from .store import nodes as node_sql

log = logging.getLogger("brender.dispatch")
TOUCH_ROUNDS = 10


class Reaper:
    def __init__(self, config: Config, db: Database, sessions: ConnectedNodes,
                 outcomes: Outcomes):
        self.config = config
        self.db = db
        self.sessions = sessions
        self.outcomes = outcomes
        self._rounds = 0
        # Whether this coordinator does the farm's once-per-farm duties (farm_link.py):
        # every coordinator renews its own nodes' leases, one requeues the lapsed ones.
        self.holds_duties: Callable[[], bool] = lambda: True

    async def run(self, interval: float = 1.0) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.reap(time.time())
            except Exception as exc:
                log.error("reaper round failed: %s", exc)

    async def reap(self, now: float) -> int:
        """Renew the leases of connected nodes; requeue those whose node went silent.

        A channel counts as alive while it is open: the channel watch (liveness.py)
        closes one its node stopped talking on, so a node
        that is killed or unplugged stops renewing and loses its job after the
        lease timeout; one that reconnects in time resumes it. Only leases within
        half a timeout of their end are looked at and renewed: a farm of 1,000
        busy nodes renews a few dozen a second, not all of them every second.
        """
        due = await self.db.read(job_sql.leases_due, now + self.config.lease_timeout / 2)
        # Only a lease its node's channel holds is renewed: one whose assignment never
        # reached the node runs out like a silent node's. Looked up per lease due, not
        # over every connected node each second.
        renew, expired = [], []
        for attempt, node_id, ends in due:
            session = self.sessions.get(node_id)
            if session is not None and session.attempt_id == attempt and not session.ws.closed:
                renew.append(attempt)
            elif ends < now:
                expired.append(attempt)
        if renew:
            await self.db.write(job_sql.renew_leases, renew, self.config.lease_timeout)
        if not self.holds_duties():
            expired = []
        for attempt_id in expired:
            await self.outcomes.requeue(attempt_id,
                                        "lease expired: its node went silent or never got it")
        # Each connected node's last_seen is written every TOUCH_ROUNDS rounds, a slice of
        # the nodes each round: 5,000 rows at once hold the event loop 13 ms on an idle
        # machine (500: 1.5 ms), every 10 s a spike in its lag.
        self._rounds += 1
        live = [s.node_id for s in self.sessions if not s.ws.closed]
        if part := sorted(live[self._rounds % TOUCH_ROUNDS::TOUCH_ROUNDS]):
            await self.db.write(node_sql.touch, part)
        return len(expired)
