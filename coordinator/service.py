"""The farm service: every change the routes and the node channel ask of the farm.

Routes parse and check a request, then call one operation here (a shot submitted,
cancelled, paused, deleted; a node connected, ready, done; a frame landed) and answer
with what it returns; reads stay `db.read(store_fn, ...)` in the routes. The farm and
its parts (`scheduler`, `outcomes`, `reaper`, `view`) alone change node sessions and
publish events, so each operation's steps are sequenced in one place.
"""
from __future__ import annotations

from typing import Callable

from aiohttp import web
from brender_protocol import messages

from .chunking import chunk_frames, fixed_chunks
from .config import Config
from .database import Database
from .events import EventBroker
from .farm_events import FarmEvents
from .metrics import LandedCounters
from .liveness import ChannelWatch
from .movies import Movies
from .outcomes import Outcomes
from .reaper import Reaper
from .scheduler import Scheduler
from .availability import Availability
from .sessions import ConnectedNodes, NodeSession
from .storage import Storage
from .store import jobs as job_sql
from .store import nodes as node_sql
from .store import shots as shot_sql
from .timings import Timings
from .validation import ShotSpec
from .waiting import WaitingReasons


class Farm:
    def __init__(self, config: Config, db: Database, storage: Storage, events: EventBroker):
        self.config = config
        self.db = db
        self.storage = storage
        self.events = events
        self.sessions = ConnectedNodes(self._session_changed)
        self.view = FarmEvents(db, events, self.sessions)
        self.outcomes = Outcomes(config, db, self.sessions, self.view, self.kick)
        self.scheduler = Scheduler(config, db, self.sessions, self.view, self.outcomes)
        self.reaper = Reaper(config, db, self.sessions, self.outcomes)
        self.channels = ChannelWatch(self.sessions, config.heartbeat_interval)
        self.kick_peers: Callable[[], None] = lambda: None   # app.py: the farm link's
        self.waiting = WaitingReasons(db, self.sessions, self.view.shot_changed)
        self.availability = Availability(self.sessions, self._fell_asleep, self._woke)
        # Issue 17: told when a node's channel closes without its goodbye (webhooks).
        self.node_lost: Callable[[dict], None] | None = None
        self._leaving: set[str] = set()
        self._closing = False
        self.movies = Movies(db, storage, config.ffmpeg, self.view.shot_changed,
                             config.movie_segment_frames)
        self.landed = LandedCounters()

    def _session_changed(self, session: NodeSession) -> None:
        self.view.node_changed(session)

    async def open(self) -> None:
        """Nodes that held jobs when we stopped get a full lease to reconnect and resume."""
        await self.db.write(job_sql.renew_all_leases, self.config.lease_timeout)
        self.kick()

    async def close(self) -> None:
        """Send what dashboards have not heard yet, end their streams, close the nodes'
        channels (a dashboard left open would hold the shutdown for a minute)."""
        self._closing = True
        self.view.flush_changes()
        self.events.close()
        for session in list(self.sessions):
            await session.ws.close(code=1001, message=b"coordinator shutting down")

    # -- reads the routes share ------------------------------------------------------
    @property
    def latencies(self) -> Timings:
        return self.scheduler.latencies

    def node_view(self, node: dict) -> dict:
        return self.view.node_view(node)

    def shot_view(self, shot: dict) -> dict:
        """The shot with why its queued work waits, if it does (coordinator/waiting.py),
        and its preview movie's state (coordinator/movies.py)."""
        return self.movies.annotate(self.waiting.annotate(shot))

    async def load_shot(self, shot_id: int, with_files: bool = False) -> dict | None:
        """A shot's view, read on the bulk connection (a summary counts all its jobs)."""
        shot = await self.db.read_bulk(shot_sql.get, shot_id, with_files)
        return self.shot_view(shot) if shot else None

    def job_progress(self, job: dict) -> dict | None:
        return self.view.job_progress(job)

    def kick(self) -> None:
        self.scheduler.kick()
        self.kick_peers()  # coordinators sharing the farm claim for their nodes too

    def flush_changes(self) -> None:
        """Send the collected node and job changes now (shutdown, tests)."""
        self.view.flush_changes()

    async def reap(self, now: float) -> int:
        """One reaper round at `now` (the reaper's task runs one every second)."""
        return await self.reaper.reap(now)

    # -- shots ---------------------------------------------------------------------------
    async def submit(self, spec: ShotSpec) -> dict | None:
        """A checked spec whose files are uploaded: the shot and its jobs, queued."""
        # Adaptive shots start with one-frame jobs, which grow once frames are timed.
        jobs = fixed_chunks(spec.frames, spec.chunk_size) if spec.chunk_size \
            else chunk_frames(spec.frames, 1)
        shot_id = await self.db.write(shot_sql.create, spec, jobs)
        shot = await self.db.read(shot_sql.get, shot_id, True)
        self.view.shot_changed(shot_id)
        self.kick()
        return self.shot_view(shot) if shot else None

    async def set_priority(self, shot_id: int, priority: int) -> dict | None:
        return await self.change_shot(shot_id, {"priority": priority})

    async def change_shot(self, shot_id: int, changes: dict) -> dict | None:
        """Priority and the cap on nodes (`validation.shot_changes`)."""
        await self.db.write(shot_sql.change, shot_id, changes)
        return await self._changed(shot_id)

    async def pause(self, shot_id: int) -> dict | None:
        """Its jobs are handed out no more; running ones finish. ValueError when the
        shot's state does not allow it (so do `resume`, `cancel`, `requeue_failed`)."""
        await self.db.write(job_sql.set_paused, shot_id, True)
        return await self._changed(shot_id)

    async def resume(self, shot_id: int) -> dict | None:
        await self.db.write(job_sql.set_paused, shot_id, False)
        return await self._changed(shot_id)

    async def cancel(self, shot_id: int) -> dict | None:
        """The shot ends; the nodes rendering it stop at once."""
        running = await self.db.write(job_sql.cancel_shot, shot_id)
        await self.outcomes.cancel_attempts(running)
        return await self._changed(shot_id)

    async def requeue_failed(self, shot_id: int) -> dict | None:
        """Its failed jobs go back in the queue and its blocklist is cleared."""
        status = await self.db.read(shot_sql.status_of, shot_id)
        if status in ("completed", "cancelled"):
            raise ValueError(f"a {status} shot has nothing to requeue")
        await self.db.write(job_sql.requeue_failed, shot_id)
        return await self._changed(shot_id)

    async def delete(self, shot_id: int) -> None:
        """The shot goes with its jobs, frames and files; its running jobs stop."""
        running = await self.db.write(job_sql.delete_shot, shot_id)
        await self.outcomes.cancel_attempts(running)
        self.storage.delete_shot(shot_id)
        self.movies.forget(shot_id)
        self.view.shot_changed(shot_id)

    async def _changed(self, shot_id: int) -> dict | None:
        shot = await self.db.read(shot_sql.get, shot_id, True)
        self.view.shot_changed(shot_id)
        self.kick()
        return self.shot_view(shot) if shot else None

    # -- frames ------------------------------------------------------------------------------
    def frame_landed(self, frame: dict) -> None:
        """A frame was recorded (under its lease): dashboards see it and its shot's
        progress."""
        self.landed.frame_landed(frame)
        self.movies.landed(frame["shot_id"])
        self.view.frame_recorded(frame)

    # -- nodes, from the dashboard -------------------------------------------------
    async def set_node_enabled(self, node_id: str, enabled: bool) -> dict | None:
        """Enable or disable a node (None: no such node). A node disabled finishes its
        job; one enabled again is served in the next round."""
        node = await self.db.write(node_sql.set_enabled, node_id, enabled)
        if node is None:
            return None
        session = self.sessions.get(node["id"])
        if session is not None:
            session.set_enabled(node["enabled"])
        else:
            self.view.node_changed(node)
        self._nodes_changed()
        return self.view.node_view(node)

    async def edit_node(self, node_id: str, changes: dict) -> dict | None:
        """An admin's tags and schedule for the node (kept over its reconnects)."""
        node = await self.db.write(node_sql.edit, node_id, changes)
        if node is None:
            return None
        session = self.sessions.get(node_id)
        if session is not None:
            session.edited({**node, "enabled": session.node["enabled"]})
        else:
            self.view.node_changed(node)
        self._nodes_changed()
        return self.view.node_view(node)

    def _nodes_changed(self) -> None:
        """What nodes offer or when they work changed: claim again, recheck waiting
        shots and who is asleep."""
        self.waiting.nodes_changed()
        self.availability.poke()
        self.kick()

    async def _fell_asleep(self, session: NodeSession) -> None:
        """Outside its window: a node set to hand back stops its job now (else it
        finishes it); either way it takes no more."""
        if session.attempt_id and session.node["schedule"].get("on_sleep") == "handback":
            attempt = session.attempt_id
            await self.outcomes.requeue(attempt, "the node's availability window ended")
            await session.send(messages.cancel(attempt))
        self.waiting.nodes_changed()

    def _woke(self) -> None:
        self.waiting.nodes_changed()
        self.kick()

    # -- nodes, from their channel -------------------------------------------------------
    async def node_connected(self, hello: dict, ws: web.WebSocketResponse) -> NodeSession:
        """Add or update the node; it resumes the attempt it says it runs if that
        attempt still holds its job, else that attempt is fenced."""
        node = await self.db.write(node_sql.upsert, hello)
        session, old = self.sessions.connect(node, ws)
        if old is not None and old.ws is not ws:
            await old.ws.close(code=4409, message=b"replaced by a newer connection")
        held = await self.db.read(job_sql.running_attempt_of, node["id"])
        job = await self.db.read(job_sql.by_attempt, held) if held else None
        if job is not None and held == hello["running_attempt"]:
            session.assigned(job["attempt_id"], job["id"], job["shot_id"])
        elif held:
            # The node came back without the job we think it has: fence that attempt.
            await self.outcomes.requeue(held, "node reconnected without its job")
        session.set_asleep(not self.availability.awake(node))
        self.waiting.nodes_changed()
        if self.availability.has_boundaries(node):
            # Its window ends (or starts) some day: the loop's next wake-up may move.
            # Not for every node: each poke looks at every connected node's schedule.
            self.availability.poke()
        return session

    def node_disconnected(self, session: NodeSession) -> None:
        said_goodbye = session.node_id in self._leaving
        self._leaving.discard(session.node_id)
        if not said_goodbye and not self._closing and self.node_lost is not None \
                and self.sessions.get(session.node_id) is session:
            self.node_lost(session.node)
        self.sessions.disconnect(session)
        self.waiting.nodes_changed()

    async def node_leaving(self, session: NodeSession) -> None:
        """The node said goodbye: the job it holds goes back in the queue now."""
        self._leaving.add(session.node_id)
        if session.attempt_id:
            await self.outcomes.requeue(session.attempt_id, "node handed its job back")

    async def node_ready(self, session: NodeSession) -> None:
        """The node wants work: claim for it now rather than in the next round."""
        if session.attempt_id is not None:
            # A node says "ready" only when it holds no job: it dropped this one.
            await self.outcomes.requeue(session.attempt_id, "the node dropped it without a report")
        session.wants_work()
        await self.scheduler.serve(session)

    async def job_done(self, session: NodeSession, attempt_id: str, log_tail: str,
                       ready: bool) -> None:
        """The node finished its attempt. A node that says it is ready for more in the
        same message gets its next job from the same transaction: one write, one
        message each way between two jobs."""
        if not ready:
            session.released(attempt_id)
            await self.outcomes.finish(attempt_id, log_tail)
            return
        session.wants_work()
        if session.takes_work:
            await self.scheduler.claim([session], finishing=(attempt_id, log_tail))
        else:  # disabled: it gets its next job once enabled again
            await self.outcomes.finish(attempt_id, log_tail)

    async def job_failed(self, attempt_id: str, reason: str, log_tail: str) -> None:
        await self.outcomes.fail(attempt_id, reason, log_tail)

    def progress_changed(self, session: NodeSession, progress: dict) -> None:
        """Progress comes many times a second; tell dashboards a few times at most."""
        if session.progressed(progress) and session.job_id is not None:
            self.view.job_progressed(session)

    async def render_settings(self, session: NodeSession, settings: dict) -> None:
        """What the node renders the shot of its attempt with (the latest report wins)."""
        assert session.shot_id is not None  # set with the attempt it names
        await self.db.write(shot_sql.set_settings_used, session.shot_id, settings)
        self.view.shot_changed(session.shot_id)
