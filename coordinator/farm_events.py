"""What dashboards hear of the farm: the node view, and node, job, shot and frame events.

A busy node changes several times per frame (assigned, ready, progress) and a short job
goes from running to done before anyone could see the difference: only the latest
state matters, so node and job changes are collected and sent together a few times a
second (shot summaries are coalesced by the broker the same way).
"""
from __future__ import annotations

import asyncio
from typing import Callable, Iterator

from .database import Database
from .events import EventBroker
from .sessions import ConnectedNodes, NodeSession
from .store import jobs as job_sql

FLUSH_SLICE = 100   # changes sent per turn of the event loop


class FarmEvents:
    def __init__(self, db: Database, broker: EventBroker, sessions: ConnectedNodes):
        self.db = db
        self.broker = broker
        self.sessions = sessions
        self._dirty_nodes: dict[str, dict] = {}
        self._dirty_jobs: dict[int, dict] = {}
        # A node connected to another coordinator sharing the farm: its state there.
        self.peer_view: Callable[[str], dict | None] = lambda node_id: None
        # Whether the peers heard of this frame already (with its record's commit).
        self.told_peers: Callable[[dict], bool] = lambda frame: False

    # -- what is shown --------------------------------------------------------------
    def node_view(self, node: dict) -> dict:
        session = self.sessions.get(node["id"])
        d = dict(node)
        d.pop("allow_scripts", None)
        if session is None:
            there = self.peer_view(node["id"])
            d.update(status="offline", current_job_id=None, current_shot_id=None, progress=None)
            if there is not None:
                d.update({k: there.get(k) for k in ("status", "current_job_id",
                                                    "current_shot_id", "progress")})
        else:
            d.update(status="rendering" if session.attempt_id else
                     "asleep" if session.asleep else "idle",
                     current_job_id=session.job_id, current_shot_id=session.shot_id,
                     progress=session.progress)
        return d

    def tell_nodes(self) -> None:
        """Every node connected here is sent again (a coordinator joined the farm)."""
        for session in list(self.sessions):
            self.node_changed(session)

    def job_progress(self, job: dict) -> dict | None:
        session = self.sessions.get(job.get("node_id"))
        if session and session.job_id == job["id"]:
            return session.progress
        return None

    # -- collected changes ------------------------------------------------------------
    def node_changed(self, session_or_node: NodeSession | dict) -> None:
        """A node changed; dashboards hear its latest state within a quarter second."""
        node = session_or_node.node if isinstance(session_or_node, NodeSession) \
            else session_or_node
        self._dirty_nodes[node["id"]] = node

    async def job_changed(self, job_id: int, job: dict | None = None) -> None:
        """A job changed (the row given, or read afresh), and so did its shot."""
        job = job or await self.db.read(job_sql.get, job_id, False)
        if job:
            job.pop("log_tail", None)
            self._dirty_jobs[job["id"]] = job
            self.broker.shot_changed(job["shot_id"])

    def shot_changed(self, shot_id: int) -> None:
        self.broker.shot_changed(shot_id)

    async def flush_forever(self, interval: float = 0.25) -> None:
        """Send the collected node and job changes, a few times a second, a slice per
        turn of the loop: a busy farm of 5,000 nodes changes hundreds in a quarter
        second, and nodes' messages would wait behind them all."""
        while True:
            await asyncio.sleep(interval)
            for _ in self._flush():
                await asyncio.sleep(0)

    def flush_changes(self) -> None:
        for _ in self._flush():
            pass

    def _flush(self) -> Iterator[None]:
        """Publish the collected changes, pausing (yield) after each FLUSH_SLICE."""
        nodes, self._dirty_nodes = self._dirty_nodes, {}
        jobs, self._dirty_jobs = self._dirty_jobs, {}
        sent = 0
        for node in nodes.values():
            self.broker.publish("node", self.node_view(node))
            sent += 1
            if sent % FLUSH_SLICE == 0:
                yield
        for job in jobs.values():
            job["progress"] = self.job_progress(job)
            self.broker.publish("job", job)
            sent += 1
            if sent % FLUSH_SLICE == 0:
                yield

    # -- sent at once -------------------------------------------------------------------
    def job_progressed(self, session: NodeSession) -> None:
        """The progress of the job the node renders (already thinned by the session)."""
        self.broker.publish("job", {"id": session.job_id, "shot_id": session.shot_id,
                                    "status": "running", "node_id": session.node_id,
                                    "progress": session.progress})

    def frame_recorded(self, frame: dict) -> None:
        self.broker.publish("frame", frame, relay=not self.told_peers(frame))
        self.broker.shot_changed(frame["shot_id"])
