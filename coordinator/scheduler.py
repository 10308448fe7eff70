"""The scheduler: claims jobs for nodes that want work and sends them their assignments.

A node that says "ready" is claimed for at once, in its caller's turn of the loop, not
in a later round; a round (woken by new shots, requeues, nodes enabled) claims for every
node still waiting, up to 128 in one transaction.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Callable, Iterable

import orjson
from brender_protocol import messages

from .batches import Batches
from .config import Config
from .database import Database
from .farm_events import FarmEvents
from .outcomes import Outcomes
from .sessions import ConnectedNodes, NodeSession
from .states import ShotStatus
from .store import claims as claim_sql
from .store import jobs as job_sql
from .store import taking
from .timings import Timings

log = logging.getLogger("brender.dispatch")


class Scheduler:
    CLAIM_RUNNERS = 3

    def __init__(self, config: Config, db: Database, sessions: ConnectedNodes,
                 view: FarmEvents, outcomes: Outcomes):
        self.config = config
        self.db = db
        self.sessions = sessions
        self.view = view
        self.outcomes = outcomes
        self._wake = asyncio.Event()
        # Where writes run side by side (PostgreSQL), the claims asked while others run
        # go together in one transaction (batches.py), up to 128 nodes, sharing its
        # counts of nodes per shot; a few such transactions run side by side, as
        # another coordinator's would (each claim's round trips wait on the server).
        # SQLite's writes are serial already: a claim runs at once.
        self._batches: Batches[claim_sql.ClaimRequest, claim_sql.Claimed] | None = \
            Batches(self._claim_batch, 128, weight=lambda request: len(request[0]),
                    orphaned=self._orphaned, runners=self.CLAIM_RUNNERS) \
            if db.parallel_writes else None
        # Nodes connected to the other coordinators sharing the farm (farm_link.py).
        self.peers_online: Callable[[], int] = lambda: 0
        # Seconds from "ready" to "assign" sent: the farm's dispatch latency.
        self.latencies = Timings()
        # The dispatchable shots a claim transaction last read, at the farm's dispatch
        # generation then (PostgreSQL): a node's "done" and next job go as one
        # statement that holds while the generation is unchanged (`_take_as_seen`).
        self._seen: tuple[int, list] | None = None

    def kick(self) -> None:
        """Work may have become claimable: run a round soon."""
        self._wake.set()

    async def serve(self, session: NodeSession) -> None:
        """Claim for a node that wants work now, unless a round will serve it anyway.

        Claims from many nodes still share transactions (the database group-commits
        the writes that queue together), so a node waits for one commit, not for a
        round behind every other node's claims and uploads."""
        if session.takes_work and not self._wake.is_set():
            await self.claim([session])

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
        exhausted: set = set()  # offers that found nothing this round (claim_many)
        idle = self._idle(self.sessions)
        now = time.monotonic()
        for session in idle:
            if session.dispatched_at is None:  # it waited for work; this round has some
                session.dispatched_at = now
        for start in range(0, len(idle), round_size):
            # Nodes may have been served since the round began: look again.
            group = self._idle(idle[start:start + round_size])
            if not group:
                continue
            claims = await self.claim(group, exhausted=exhausted)
            assigned += sum(1 for a in claims if a is not None)
        return assigned

    async def claim(self, group: list[NodeSession], finishing: tuple[str, str] | None = None,
                    exhausted: set | None = None) -> list[claim_sql.Assignment | None]:
        """Claim a job for each node of `group` in one write; `finishing` (attempt,
        log tail) closes that attempt first, in the same transaction."""
        nodes = [(s.node_id, s.offer) for s in group]
        for session in group:
            session.claiming = True
        try:
            taken = None if finishing is None or self._batches is None \
                else await self._take_as_seen(nodes, finishing, exhausted)
            if taken is not None:
                finished, claims = taken
            elif self._batches is not None:
                finished, claims = await self._batches.add((nodes, finishing, exhausted))
            elif finishing is None:
                finished = None
                claims = await self.db.write(claim_sql.claim_many, nodes,
                                             *self._claim_settings(), exhausted)
            else:
                finished, claims = await self.db.write(
                    claim_sql.finish_then_claim, *finishing, nodes, *self._claim_settings(),
                    exhausted)
        finally:
            for session in group:
                session.claiming = False
        if finishing is not None and finished is not None:
            await self.outcomes.finished(finishing[0], *finished)
        for session, assignment in zip(group, claims):
            if assignment is not None:
                await self._send_assignment(session, assignment)
            else:
                session.dispatched_at = None
        return claims

    def _claim_settings(self) -> tuple:
        return (self.config.lease_timeout, self.config.blocklist_threshold,
                self.config.target_job_seconds, len(self.sessions) + self.peers_online(),
                self.sessions.farm_series())

    async def _claim_batch(self, requests: list[claim_sql.ClaimRequest],
                           ) -> list[claim_sql.Claimed]:
        claimed: list[claim_sql.Claimed] = await self.db.write(
            claim_sql.claim_batch, requests, *self._claim_settings(), self._saw)
        return claimed

    def _saw(self, generation: int | None, shots: list | None) -> None:
        """A claim transaction read the dispatchable shots (None: nodes differ, each
        reads its own). Transactions end out of order: an older read never replaces a
        newer one."""
        if generation is None or not shots:
            self._seen = None
        elif self._seen is None or generation >= self._seen[0]:
            self._seen = (generation, shots)

    async def _take_as_seen(self, nodes: list, finishing: tuple[str, str],
                            exhausted: set | None) -> claim_sql.Claimed | None:
        """A lone node's "done" and its next job in one statement, chosen from the
        dispatchable shots last read, while nothing a choice reads has changed since
        (taking.finish_and_take_as_seen). None: ask the usual way (a batch)."""
        seen = self._seen
        if seen is None:
            return None
        generation, shots = seen
        lease, _, _, nodes_online, farm = self._claim_settings()
        choice = claim_sql.sole_choice(nodes, shots, farm, exhausted)
        if choice is None or choice[0]["status"] != ShotStatus.ACTIVE.value:
            return None
        shot, version, device = choice
        taken = await self.db.write(taking.finish_and_take_as_seen, finishing, shot,
                                    generation, nodes[0][0], lease, nodes_online)
        if taken.generation != generation and self._seen is seen:
            self._seen = None   # a transaction reads them again
        if taken.assignment is not None:
            taken.assignment.blender_version, taken.assignment.device = version or None, device
            return taken.outcome, [taken.assignment]
        if taken.finished is None:
            return None   # changed since, or not done: the batch finishes it, or not
        # Done, and the shot had no queued job left: it may be complete.
        outcome = await self.db.write(job_sql.settle_done, taken.finished)
        assert self._batches is not None
        _, claims = await self._batches.add((nodes, None, exhausted))
        return outcome, claims

    async def _orphaned(self, request: claim_sql.ClaimRequest,
                        outcome: claim_sql.Claimed) -> None:
        """A batch claimed for a caller that went away: its finish still counts, and
        the jobs claimed for it go back to the queue."""
        finishing, (finished, claims) = request[1], outcome
        if finishing is not None and finished is not None:
            await self.outcomes.finished(finishing[0], *finished)
        for assignment in claims:
            if assignment is not None:
                await self.outcomes.requeue(assignment.attempt_id, "its claim was abandoned")

    def _assign_message(self, a: claim_sql.Assignment) -> str:
        """The encoded message; raises when the shot's data cannot be sent (text that is
        not valid Unicode, a manifest that is not JSON)."""
        shot, job = a.shot, a.job
        render = json.loads(shot["render"])
        message = messages.assign(job["id"], a.attempt_id, shot["id"], a.frames,
                                  shot["blend_path"], json.loads(shot["files"]), render,
                                  bool(shot["allow_scripts"]), a.blender_version, a.device)
        return orjson.dumps(message).decode()

    async def _send_assignment(self, session: NodeSession, a: claim_sql.Assignment) -> None:
        try:
            message = self._assign_message(a)
        except Exception as exc:  # this job's data; the round goes on with the others
            await self.outcomes.undeliverable(a, exc)
            return
        session.assigned(a.attempt_id, a.job["id"], a.shot["id"])
        sent = await session.send_text(message)
        now = time.monotonic()
        self.latencies.add(now - (session.dispatched_at or now), now)
        if not sent:
            await self.outcomes.requeue(a.attempt_id, "node went away during assignment")
            return
        await self.view.job_changed(a.job["id"], a.job)
