"""Connected nodes and the scheduler that hands them jobs; the lease reaper."""
from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any, Iterable

import orjson
from aiohttp import web

from .config import Config
from .database import Database
from .events import EventBroker
from .sessions import NodeSession
from .timings import Timings
from .store import jobs as job_sql
from .store import nodes as node_sql

log = logging.getLogger("brender.dispatch")
UNDELIVERABLE = "could not send the job to a node"


class Dispatcher:
    def __init__(self, config: Config, db: Database, events: EventBroker):
        self.config = config
        self.db = db
        self.events = events
        self.sessions: dict[str, NodeSession] = {}
        self._wake = asyncio.Event()
        # Seconds from "ready" to "assign" sent: the farm's dispatch latency.
        self.latencies = Timings()
        self._rounds = 0
        self._dirty_nodes: dict[str, dict] = {}
        self._dirty_jobs: dict[int, dict] = {}

    # -- node view ----------------------------------------------------------
    def node_view(self, node: dict) -> dict:
        session = self.sessions.get(node["id"])
        d = dict(node)
        d.pop("allow_scripts", None)
        if session is None:
            d.update(status="offline", current_job_id=None, current_shot_id=None, progress=None)
        else:
            d.update(status="rendering" if session.attempt_id else "idle",
                     current_job_id=session.job_id, current_shot_id=session.shot_id,
                     progress=session.progress)
        return d

    def publish_node(self, session_or_node: NodeSession | dict) -> None:
        """A node changed; dashboards hear its latest state within a quarter second.

        A busy node changes several times per frame (assigned, ready, progress):
        only the last state matters, so changes are collected and sent together."""
        node = session_or_node.node if isinstance(session_or_node, NodeSession) else session_or_node
        self._dirty_nodes[node["id"]] = node

    async def flush_nodes(self, interval: float = 0.25) -> None:
        """Send the collected node and job changes, a few times a second."""
        while True:
            await asyncio.sleep(interval)
            self.flush_changes()

    def flush_changes(self) -> None:
        nodes, self._dirty_nodes = self._dirty_nodes, {}
        for node in nodes.values():
            self.events.publish("node", self.node_view(node))
        jobs, self._dirty_jobs = self._dirty_jobs, {}
        for job in jobs.values():
            job["progress"] = self.job_progress(job)
            self.events.publish("job", job)

    async def publish_job(self, job_id: int, job: dict | None = None) -> None:
        """Tell dashboards about a job (the row given, or read afresh). Like nodes,
        jobs are sent in their latest state a few times a second: a short job goes
        from running to done before anyone could see the difference."""
        job = job or await self.db.read(job_sql.get, job_id, False)
        if job:
            job.pop("log_tail", None)
            self._dirty_jobs[job["id"]] = job
            self.events.shot_changed(job["shot_id"])

    def job_progress(self, job: dict) -> dict | None:
        session = self.sessions.get(job.get("node_id") or "")
        if session and session.job_id == job["id"]:
            return session.progress
        return None

    # -- sessions -----------------------------------------------------------
    def connect(self, node: dict, ws: web.WebSocketResponse,
                ) -> tuple[NodeSession, NodeSession | None]:
        """Register a node's channel; returns it and a previous channel of the same node."""
        session = NodeSession(node, ws, self.publish_node)
        old = self.sessions.get(session.node_id)
        self.sessions[session.node_id] = session
        self.publish_node(session)
        return session, old

    def detach(self, session: NodeSession) -> None:
        if self.sessions.get(session.node_id) is session:
            del self.sessions[session.node_id]
            self.publish_node(session)

    def node_changed(self, node: dict) -> None:
        """A node was enabled or disabled; one enabled again is served in the next round."""
        session = self.sessions.get(node["id"])
        if session is not None:
            session.set_enabled(node["enabled"])
        else:
            self.publish_node(node)
        self.kick()

    def _release(self, attempt_id: str, node_id: str | None = None) -> None:
        """The attempt no longer holds its job: the node that held it holds nothing."""
        holders = [self.sessions.get(node_id)] if node_id else list(self.sessions.values())
        for session in holders:
            if session is not None and session.released(attempt_id):
                return

    async def node_ready(self, session: NodeSession) -> None:
        """The node wants work: claim for it now rather than in the next round.

        Claims from many nodes still share transactions (the database group-commits
        the writes that queue together), so a node waits for one commit, not for a
        round behind every other node's claims and uploads."""
        if session.attempt_id is not None:
            # A node says "ready" only when it holds no job: it dropped this one.
            await self.requeue(session.attempt_id, "the node dropped it without a report")
        session.wants_work()
        if session.takes_work and not self._wake.is_set():
            await self._claim([session])

    async def job_done(self, session: NodeSession, attempt_id: str, log_tail: str,
                       ready: bool) -> None:
        """The node finished its attempt. A node that says it is ready for more in the
        same message gets its next job from the same transaction: one write, one
        message each way between two jobs."""
        if not ready:
            session.released(attempt_id)
            await self.finish(attempt_id, log_tail)
            return
        session.wants_work()
        if session.takes_work:
            await self._claim([session], finishing=(attempt_id, log_tail))
        else:  # disabled: it gets its next job once enabled again
            await self.finish(attempt_id, log_tail)

    def progress_changed(self, session: NodeSession, progress: dict) -> None:
        """Progress comes many times a second; tell dashboards a few times at most."""
        if session.progressed(progress) and session.job_id is not None:
            self.events.publish("job", {"id": session.job_id, "shot_id": session.shot_id,
                                        "status": "running", "node_id": session.node_id,
                                        "progress": session.progress})

    def kick(self) -> None:
        self._wake.set()

    # -- scheduler ----------------------------------------------------------
    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self.dispatch_once()
            except Exception as exc:  # keep dispatching whatever one round hit
                log.error("dispatch round failed (%s); retrying in a second", exc)
                await asyncio.sleep(1)
                self.kick()

    def _idle(self, sessions: Iterable[NodeSession]) -> list[NodeSession]:
        return [s for s in sessions if s.takes_work]

    async def dispatch_once(self, round_size: int = 128) -> int:
        """Claim for every idle node (new work, requeues), a group per transaction."""
        assigned = 0
        idle = self._idle(self.sessions.values())
        now = time.monotonic()
        for session in idle:
            if session.dispatched_at is None:  # it waited for work; this round has some
                session.dispatched_at = now
        for start in range(0, len(idle), round_size):
            # Nodes may have been served since the round began: look again.
            group = self._idle(idle[start:start + round_size])
            if not group:
                continue
            claims = await self._claim(group)
            assigned += sum(1 for a in claims if a is not None)
            if claims[-1] is None and not await self.db.read(job_sql.node_specific_limits):
                break
        return assigned

    async def _claim(self, group: list[NodeSession], finishing: tuple[str, str] | None = None,
                     ) -> list[job_sql.Assignment | None]:
        """Claim a job for each node of `group` in one write; `finishing` (attempt,
        log tail) closes that attempt first, in the same transaction."""
        nodes = [(s.node_id, s.node["allow_scripts"]) for s in group]
        settings = (self.config.lease_timeout, self.config.blocklist_threshold,
                    self.config.target_job_seconds, len(self.sessions))
        for session in group:
            session.claiming = True
        try:
            if finishing is None:
                claims = await self.db.write(job_sql.claim_many, nodes, *settings)
            else:
                (outcome, job), claims = await self.db.write(
                    job_sql.finish_then_claim, *finishing, nodes, *settings)
        finally:
            for session in group:
                session.claiming = False
        if finishing is not None:
            await self._finished(finishing[0], outcome, job)
        for session, assignment in zip(group, claims):
            if assignment is not None:
                await self._send_assignment(session, assignment)
            else:
                session.dispatched_at = None
        return claims

    def _assign_message(self, a: job_sql.Assignment) -> str:
        """The encoded message; raises when the shot's data cannot be sent (text that is
        not valid Unicode, a manifest that is not JSON)."""
        shot, job = a.shot, a.job
        render = json.loads(shot["render"])
        message = {"type": "assign", "job": {
            "job_id": job["id"], "attempt_id": a.attempt_id, "shot_id": shot["id"],
            "frames": a.frames, "blend_path": shot["blend_path"],
            "files": json.loads(shot["files"]), "render": render,
            # Old nodes read these two; null means the file's own.
            "output_format": render.get("output_format"),
            "resolution_percentage": render.get("resolution_percentage"),
            "allow_scripts": bool(shot["allow_scripts"])}}
        return orjson.dumps(message).decode()

    async def _send_assignment(self, session: NodeSession, a: job_sql.Assignment) -> None:
        try:
            message = self._assign_message(a)
        except Exception as exc:  # this job's data; the round goes on with the others
            await self._undeliverable(a, exc)
            return
        session.assigned(a.attempt_id, a.job["id"], a.shot["id"])
        sent = await session.send_text(message)
        now = time.monotonic()
        self.latencies.add(now - (session.dispatched_at or now), now)
        if not sent:
            await self.requeue(a.attempt_id, "node went away during assignment")
            return
        await self.publish_job(a.job["id"], a.job)

    async def _undeliverable(self, a: job_sql.Assignment, exc: Exception) -> None:
        """A job that cannot be put into a message (say, a shot stored before its text
        was checked) would fail on every node: it fails for good, with its shot, and
        its node, still waiting, gets the next job in the next round."""
        reason = f"{UNDELIVERABLE}: {exc}".encode(errors="replace").decode()
        log.error("job %s of shot %s: %s", a.job["id"], a.shot["id"], reason)
        await self.db.write(job_sql.fail_for_good, a.attempt_id, reason)
        await self.publish_job(a.job["id"])
        self.kick()

    # -- attempt outcomes -----------------------------------------------------
    async def requeue(self, attempt_id: str, why: str) -> None:
        job = await self.db.write(job_sql.requeue, attempt_id)
        self._release(attempt_id, job["node_id"] if job else None)
        if job:
            log.info("job %s requeued: %s", job["id"], why)
            await self.publish_job(job["id"])
            self.kick()

    async def fail(self, attempt_id: str, reason: str, log_tail: str) -> None:
        job = await self.db.write(job_sql.fail, attempt_id, reason, log_tail,
                                  self.config.max_attempts, self.config.blocklist_threshold)
        self._release(attempt_id, job["node_id"] if job else None)
        if job:
            log.info("job %s attempt failed: %s", job["id"], reason)
            await self.publish_job(job["id"])
            await self.fail_unrenderable(job["shot_id"])
            self.kick()

    async def finish(self, attempt_id: str, log_tail: str = "") -> str:
        outcome, job = await self.db.write(job_sql.finish, attempt_id, log_tail)
        await self._finished(attempt_id, outcome, job)
        return outcome

    async def _finished(self, attempt_id: str, outcome: str, job: dict | None) -> None:
        if outcome == "missing":
            await self.fail(attempt_id, "the node reported the job done but frames are missing",
                            "")
        elif job:
            await self.publish_job(job["id"], job)

    async def fail_unrenderable(self, shot_id: int) -> None:
        """A shot that every node is blocklisted for fails now, with the reason."""
        if not self.sessions:
            return
        blocked = await self.db.read(job_sql.blocked_nodes, shot_id,
                                     self.config.blocklist_threshold)
        if any(s.node["enabled"] and s.node_id not in blocked for s in self.sessions.values()):
            return
        await self.db.write(job_sql.fail_unrenderable, shot_id,
                            "every online node failed this shot repeatedly")
        self.events.shot_changed(shot_id)

    async def cancel_attempts(self, attempts: list[dict[str, Any]]) -> None:
        """The shot of these running attempts was cancelled or deleted: their nodes stop
        and hold nothing; each gets its next job once it says it is ready."""
        for job in attempts:
            session = self.sessions.get(job["node_id"] or "")
            if session is not None and session.released(job["attempt_id"]):
                await session.send({"type": "cancel", "attempt_id": job["attempt_id"]})

    # -- reaper -----------------------------------------------------------------
    async def reap_forever(self, interval: float = 1.0) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.reap(time.time())
            except Exception as exc:
                log.error("reaper round failed: %s", exc)

    async def reap(self, now: float) -> int:
        """Renew the leases of connected nodes; requeue those whose node went silent.

        A connection counts as alive while its WebSocket answers pings, so a node
        that is killed or unplugged stops renewing and loses its job after the
        lease timeout; one that reconnects in time resumes it. Only leases within
        half a timeout of their end are looked at and renewed: a farm of 1,000
        busy nodes renews a few dozen a second, not all of them every second.
        """
        live = {s.node_id for s in self.sessions.values() if not s.ws.closed}
        # Only a lease its node's channel holds is renewed: one whose assignment never
        # reached the node runs out like a silent node's.
        held = {s.attempt_id for s in self.sessions.values() if not s.ws.closed}
        due = await self.db.read(job_sql.leases_due, now + self.config.lease_timeout / 2)
        renew = [attempt for attempt, _, _ in due if attempt in held]
        if renew:
            await self.db.write(job_sql.renew_leases, renew, self.config.lease_timeout)
        expired = [attempt for attempt, _, ends in due if attempt not in held and ends < now]
        for attempt_id in expired:
            await self.requeue(attempt_id, "lease expired: its node went silent or never got it")
        self._rounds += 1
        if self._rounds % 10 == 0:
            await self.db.write(node_sql.touch, sorted(live))
        return len(expired)
