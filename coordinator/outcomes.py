"""How attempts end: finished, failed (with the blocklist and "nothing can render this
shot"), requeued, cancelled with their shot, or failed for good when undeliverable.

Whenever an attempt stops holding its job, its node's session is released, so a node is
never left looking busy or ignored when it asks for its next job.
"""
from __future__ import annotations

import logging
from typing import Any, Callable

from brender_protocol import messages

from . import matching
from .config import Config
from .database import Database
from .farm_events import FarmEvents
from .sessions import ConnectedNodes
from .store import claims as claim_sql
from .store import jobs as job_sql
from .store import shots as shot_sql

log = logging.getLogger("brender.dispatch")
UNDELIVERABLE = "could not send the job to a node"


class Outcomes:
    def __init__(self, config: Config, db: Database, sessions: ConnectedNodes,
                 view: FarmEvents, wake: Callable[[], None]):
        self.config = config
        self.db = db
        self.sessions = sessions
        self.view = view
        self._wake = wake  # the scheduler's: a requeued or freed job may be claimed now

    async def requeue(self, attempt_id: str, why: str) -> None:
        job = await self.db.write(job_sql.requeue, attempt_id)
        self.sessions.release(attempt_id, job["node_id"] if job else None)
        if job:
            log.info("job %s requeued: %s", job["id"], why)
            await self.view.job_changed(job["id"])
            self._wake()

    async def fail(self, attempt_id: str, reason: str, log_tail: str) -> None:
        job = await self.db.write(job_sql.fail, attempt_id, reason, log_tail,
                                  self.config.max_attempts, self.config.blocklist_threshold)
        self.sessions.release(attempt_id, job["node_id"] if job else None)
        if job:
            log.info("job %s attempt failed: %s", job["id"], reason)
            await self.view.job_changed(job["id"])
            await self.fail_unrenderable(job["shot_id"])
            self._wake()

    async def finish(self, attempt_id: str, log_tail: str = "") -> str:
        outcome, job = await self.db.write(job_sql.finish, attempt_id, log_tail)
        await self.finished(attempt_id, outcome, job)
        return outcome

    async def finished(self, attempt_id: str, outcome: str, job: dict | None) -> None:
        """What follows a finish written (alone, or before the node's next claim)."""
        if outcome == "missing":
            await self.fail(attempt_id, "the node reported the job done but frames are missing",
                            "")
        elif job:
            await self.view.job_changed(job["id"], job)

    async def fail_unrenderable(self, shot_id: int) -> None:
        """A shot that every node able to render it is blocklisted for fails now, with
        the reason (nodes it does not suit, by tags, device or version, do not count)."""
        if not self.sessions:
            return
        blocked = await self.db.read(job_sql.blocked_nodes, shot_id,
                                     self.config.blocklist_threshold)
        shot = await self.db.read(shot_sql.get, shot_id)
        if shot is None:
            return
        needs, farm = matching.needs_of_view(shot), self.sessions.farm_series()
        able = [s for s in self.sessions if matching.blender_for(needs, s.offer, farm) is not None]
        if not able or any(s.node["enabled"] and s.node_id not in blocked for s in able):
            return  # no node could take it anyway (it waits), or one still can
        await self.db.write(job_sql.fail_unrenderable, shot_id,
                            "every online node failed this shot repeatedly")
        self.view.shot_changed(shot_id)

    async def undeliverable(self, a: claim_sql.Assignment, exc: Exception) -> None:
        """A job that cannot be put into a message (say, a shot stored before its text
        was checked) would fail on every node: it fails for good, with its shot, and
        its node, still waiting, gets the next job in the next round."""
        reason = f"{UNDELIVERABLE}: {exc}".encode(errors="replace").decode()
        log.error("job %s of shot %s: %s", a.job["id"], a.shot["id"], reason)
        await self.db.write(job_sql.fail_for_good, a.attempt_id, reason)
        await self.view.job_changed(a.job["id"])
        self._wake()

    async def cancel_attempts(self, attempts: list[dict[str, Any]]) -> None:
        """The shot of these running attempts was cancelled or deleted: their nodes stop
        and hold nothing; each gets its next job once it says it is ready."""
        for job in attempts:
            session = self.sessions.get(job["node_id"])
            if session is not None and session.released(job["attempt_id"]):
                await session.send(messages.cancel(job["attempt_id"]))
