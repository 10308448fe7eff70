"""The node agent: dial the coordinator, shake hands, take jobs, report back."""
from __future__ import annotations

import asyncio
import json
import logging
import os
import platform
import random
import socket
import ssl
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import aiohttp
from brender_protocol import messages

from . import __version__
from .blender import BlenderFailed
from .installs import offered_devices, probe_all
from .layouts import farm_key
from .runner import LeaseLost, NodeOptions, Renderer

log = logging.getLogger("brender.node")
SPARE_AFTER_IDLE = 2.0  # seconds without a job before a spare Blender is started


@dataclass
class AgentConfig:
    coordinator: str
    token: str
    name: str
    options: NodeOptions
    tags: list[str] = field(default_factory=list)
    max_backoff: float = 10.0
    # --blender, repeatable: Blender binaries or bpy venv Pythons (empty: options.blender)
    blenders: list[str] = field(default_factory=list)
    ssl_context: ssl.SSLContext | None = None  # an https:// coordinator's, verified


class Agent:
    def __init__(self, config: AgentConfig):
        self.config = config
        # Several coordinators may serve one farm (one database, one data dir): tried in
        # turn, the next one whenever the one in use cannot be reached.
        self.urls = [u.strip().rstrip("/") for u in config.coordinator.split(",") if u.strip()]
        self._current = 0
        self.renderer = Renderer(config.options)
        self.node_id = self._load_id()
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.job: dict | None = None
        self.job_task: asyncio.Task | None = None
        self.pending_report: dict | None = None
        self.stopping = asyncio.Event()
        self.features: set[str] = set()
        self.jobs_done = 0
        self.spare_timer: asyncio.TimerHandle | None = None
        self.farm = farm_key(None, self.base)  # the welcome's farm_id, once we have one

    @property
    def base(self) -> str:
        """The coordinator in use (uploads under way follow it when it changes)."""
        return self.urls[self._current]

    def _next_coordinator(self) -> bool:
        """Turn to the next coordinator URL; False when back at the first one."""
        self._current = (self._current + 1) % len(self.urls)
        return self._current != 0

    # -- identity --------------------------------------------------------------
    @property
    def _id_file(self) -> Path:
        return self.config.options.work_dir / "node_id"

    def _load_id(self) -> str | None:
        try:
            return self._id_file.read_text().strip() or None
        except OSError:
            return None

    def _save_id(self, node_id: str) -> None:
        self._id_file.parent.mkdir(parents=True, exist_ok=True)
        self._id_file.write_text(node_id)
        self.node_id = node_id

    def hello(self) -> dict:
        installs = self.renderer.installs
        return messages.hello(
            self.node_id, self.config.name, socket.gethostname(),
            platform.platform(terse=True), installs[0].version, os.cpu_count() or 1,
            self.config.tags, self.config.options.allow_scripts,
            self.job["attempt_id"] if self.job else None, __version__,
            devices=offered_devices(installs),
            blenders=[i.version for i in installs if i.version], utc_offset=utc_offset())

    # -- main loop ---------------------------------------------------------------
    async def run(self) -> None:
        self.renderer.use_installs(await probe_all(
            self.config.blenders or [self.config.options.blender], self.config.options.gpus))
        self.renderer.prepare_spare()
        headers = {"Authorization": f"Bearer {self.config.token}"}
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10)
        connector = aiohttp.TCPConnector(ssl=self.config.ssl_context or True)
        async with aiohttp.ClientSession(headers=headers, timeout=timeout,
                                         connector=connector) as http:
            self.http = http
            backoff = 0.5
            while not self.stopping.is_set():
                try:
                    await self._connect_once(http)
                    backoff = 0.5
                except PermissionError as exc:
                    log.error("%s", exc)
                    raise
                except aiohttp.WSServerHandshakeError as exc:
                    if exc.status == 401:
                        log.error("the coordinator refused our credential (wrong or revoked)")
                        raise PermissionError("wrong or revoked credential") from None
                    log.info("handshake failed (%s); retrying", exc.status)
                except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
                    log.info("coordinator %s unreachable (%s)", self.base,
                             exc or type(exc).__name__)
                if self.stopping.is_set():
                    break
                if self._next_coordinator():
                    continue  # another coordinator of the farm: at once
                await self._sleep(backoff * (0.75 + random.random() / 2))
                backoff = min(backoff * 2, self.config.max_backoff)
            await self._shutdown()

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self.stopping.wait(), seconds)
        except asyncio.TimeoutError:
            pass

    async def _connect_once(self, http: aiohttp.ClientSession) -> None:
        async with http.ws_connect(f"{self.base}/api/node/ws", heartbeat=10,
                                   max_msg_size=1 << 24) as ws:
            await ws.send_json(self.hello())
            welcome = await ws.receive_json(timeout=30)
            if welcome.get("type") != "welcome":
                raise aiohttp.ClientError(f"handshake refused: {welcome.get('error')}")
            self._save_id(welcome["node_id"])
            self.farm = farm_key(welcome.get("farm_id"), self.base)
            self.features = set(welcome.get("features") or [])
            self.ws = ws
            log.info("connected to %s as %s (%s)", self.base, self.config.name, self.node_id)
            if self.job and not welcome.get("resume_attempt"):
                log.info("the coordinator took our job back; stopping it")
                await self._stop_job()
            report, self.pending_report = self.pending_report, None
            asked = False  # whether the report already asked for the next job
            if report and self.job and welcome.get("resume_attempt"):
                asked = report["type"] == "job_done" and not self.stopping.is_set() \
                    and messages.READY_IN_REPORT in self.features
                report["ready"] = asked
                self._job_finished()  # first: the answer may be the next job
                await self._send(report)
            if self.job is None and not asked:
                await self._send(messages.ready())
            beat = asyncio.create_task(self._heartbeat(welcome.get("heartbeat_interval", 5)))
            try:
                async for msg in ws:
                    if msg.type == aiohttp.WSMsgType.TEXT:
                        await self._on_message(json.loads(msg.data))
                    elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.ERROR):
                        break
            finally:
                beat.cancel()
                self.ws = None

    async def _heartbeat(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            await self._send(messages.heartbeat())

    async def _send(self, message: dict) -> bool:
        ws = self.ws
        if ws is None or ws.closed:
            return False
        try:
            await ws.send_json(message)
            return True
        except (ConnectionError, RuntimeError, aiohttp.ClientError):
            return False

    async def _on_message(self, msg: dict) -> None:
        kind = msg.get("type")
        if kind == "assign":
            if self.job is not None:
                log.warning("assigned a job while busy; ignoring")
                return
            self.job = msg["job"]
            self.job_task = asyncio.create_task(self._run_job(self.job))
        elif kind == "cancel":
            if self.job and msg.get("attempt_id") == self.job["attempt_id"]:
                log.info("job %s cancelled by the coordinator", self.job["job_id"])
                await self._stop_job()
                await self._send(messages.ready())
        elif kind == "error":
            log.warning("coordinator says: %s", msg.get("error"))

    # -- jobs --------------------------------------------------------------------
    async def _run_job(self, job: dict) -> None:
        attempt = job["attempt_id"]
        log.info("job %s: frames %s of shot %s", job["job_id"], _span(job["frames"]),
                 job["shot_id"])

        def progress(frame: int, sample: int, samples: int) -> None:
            message = messages.progress(attempt, frame, sample, samples)
            asyncio.get_running_loop().create_task(self._send(message))

        def render_settings(settings: dict) -> None:
            message = messages.render_settings(attempt, settings)
            asyncio.get_running_loop().create_task(self._send(message))

        report: dict | None
        try:
            log_tail = await self.renderer.run(job, self.http, lambda: self.base, progress,
                                               self.farm, render_settings)
            report = messages.job_done(attempt, log_tail)
            self.jobs_done += 1
        except LeaseLost:
            log.info("job %s: our lease was taken back; dropping it", job["job_id"])
            report = None
        except BlenderFailed as exc:
            log.warning("job %s failed: %s", job["job_id"], exc.reason)
            report = messages.job_failed(attempt, exc.reason, exc.log_tail)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # report anything else rather than go silent
            log.exception("job %s crashed the runner", job["job_id"])
            report = messages.job_failed(attempt, f"node error: {type(exc).__name__}: {exc}",
                                         "")
        if report is None:
            self._job_finished()
            await self._send(messages.ready())
            return
        # A coordinator that can, answers the report with the next job: one round trip.
        ready_in_report = report["type"] == "job_done" and not self.stopping.is_set() \
            and messages.READY_IN_REPORT in self.features
        if ready_in_report:
            report["ready"] = True
        held = self.job, self.job_task
        # Before sending: the coordinator's answer to a ready report is the next job.
        self._job_finished()
        if not await self._send(report):
            # Disconnected: keep the job and report once the coordinator resumes it.
            self.job, self.job_task = held
            self.pending_report = report
        elif not ready_in_report:
            await self._send(messages.ready())

    def _job_finished(self) -> None:
        self.job, self.job_task = None, None
        # Not at once: a busy node gets its next job within a round trip, and a spare
        # started then would take CPU from that job's render.
        if self.spare_timer is not None:
            self.spare_timer.cancel()
        self.spare_timer = asyncio.get_running_loop().call_later(SPARE_AFTER_IDLE,
                                                                 self._idle)

    def _idle(self) -> None:
        # A job that arrived since, or a stop, leaves the timer nothing to do.
        if self.job is None and not self.stopping.is_set():
            self.renderer.prepare_spare()

    async def _stop_job(self) -> None:
        task = self.job_task
        self._job_finished()
        self.pending_report = None
        if task and not task.done():
            task.cancel()
            # A warm Blender reads "quit" only once it has rendered the frames it was
            # asked for: stop it now, so the job stops at once.
            if self.renderer.session is not None:
                await self.renderer.session.kill()
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        await self.renderer.close()

    # -- stopping ------------------------------------------------------------------
    def request_stop(self) -> None:
        self.stopping.set()
        if self.ws is not None:
            asyncio.get_running_loop().create_task(self._goodbye())

    async def _goodbye(self) -> None:
        """SIGTERM: stop Blender, hand the job back, say goodbye."""
        await self._stop_job()
        await self._send(messages.goodbye())
        if self.ws is not None:
            await self.ws.close()

    async def _shutdown(self) -> None:
        await self._stop_job()
        await self.renderer.shutdown()


def utc_offset() -> int:
    """Seconds east of UTC of this machine's clock now (availability windows are local)."""
    offset = datetime.now().astimezone().utcoffset()
    return int(offset.total_seconds()) if offset is not None else 0


def _span(frames: list[int]) -> str:
    return f"{frames[0]}-{frames[-1]}" if len(frames) > 1 else str(frames[0]) if frames else "-"
