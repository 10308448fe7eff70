"""Running one assignment: files, Blender, frame uploads as each frame lands."""
from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import aiohttp

from . import outputs
from .blender import (BlenderFailed, BlenderProcess, FrameCallback, ProgressCallback,
                      RenderSettings)
from .cache import BlobCache, CacheError
from .cache_cleaning import clean
from .installs import BlenderInstall, choose, default_installs
from .layouts import Layouts

log = logging.getLogger("brender.node.runner")
UPLOAD_TRIES = 8
SPARE_RETRY_AFTER = 300.0  # seconds: a Blender that cannot start now rarely can in a moment
DEFAULT_CACHE_SIZE = 20 << 30
DEFAULT_CACHE_AGE = 7 * 86400.0  # seconds a layout may go unused before it is removed
SettingsCallback = Callable[[dict], None]


class LeaseLost(Exception):
    """The coordinator fenced our attempt; stop without reporting."""


@dataclass
class NodeOptions:
    blender: str  # the default Blender's path, until the agent's probe (use_installs)
    work_dir: Path
    gpus: list[int] | None = None  # --gpus: GPU indices per device type (None: all)
    hang_timeout: float = 300.0
    warm_sessions: bool = True
    recycle_after: int = 500
    allow_scripts: bool = False
    upload_tries: int = UPLOAD_TRIES
    spare: bool = True
    cache_size: int = DEFAULT_CACHE_SIZE
    cache_max_age: float = DEFAULT_CACHE_AGE


def job_overrides(job: dict) -> dict:
    """The shot's `render` overrides, only the keys set. A coordinator from before
    `render` sends output_format and resolution_percentage at the top (now maybe null)."""
    render = job.get("render")
    overrides = {k: v for k, v in render.items() if v is not None} \
        if isinstance(render, dict) else {}
    for key in ("output_format", "resolution_percentage"):
        if overrides.get(key) is None and job.get(key) is not None:
            overrides[key] = job[key]
    if job.get("device") is not None:  # cpu, gpu, any; absent: the file's own
        overrides["device"] = job["device"]
    return overrides


def files_digest(files: list[dict]) -> str:
    """What a layout holds: a warm session serves only a layout with the same files."""
    listed = sorted((f["path"], f["sha256"]) for f in files)
    return hashlib.sha256(json.dumps(listed).encode()).hexdigest()


class Renderer:
    """Owns the warm Blender session, reused across jobs of the same shot, and the
    spare: a Blender started while the node is idle, which opens the next shot's file
    so that shot's first frame does not wait for Blender to start."""

    def __init__(self, options: NodeOptions):
        self.options = options
        self.installs = default_installs(options.blender)
        self.last_install = self.installs[0]  # the spare is of the Blender used last
        self.cache = BlobCache(options.work_dir / "cache")
        self.layouts = Layouts(options.work_dir / "projects", self.cache)
        self.cleaning: asyncio.Task | None = None
        self.cleaned_once = False
        # Frames of attempts a node that stopped abruptly never uploaded.
        shutil.rmtree(options.work_dir / "output", ignore_errors=True)
        self.session: BlenderProcess | None = None  # the warm session of the last shot
        self.session_key: tuple | None = None
        self.warm_broken = False
        self.spare: asyncio.Task[BlenderProcess] | None = None
        self.spare_install = self.last_install  # which Blender the spare is
        self.spare_retry_at = 0.0

    def use_installs(self, installs: list[BlenderInstall]) -> None:
        """The node's probed Blenders (installs.probe_all), before any render."""
        self.installs = installs
        self.last_install = self.spare_install = installs[0]

    async def close(self) -> None:
        if self.session:
            await self.session.close()
        self.session, self.session_key = None, None

    async def shutdown(self) -> None:
        await self.close()
        if self.cleaning is not None:
            await asyncio.shield(self.cleaning)
        task, self.spare = self.spare, None
        if task is not None:
            await _discard(task)

    def prepare_spare(self) -> None:
        """Start a spare Blender in the background unless one is up or starting."""
        o = self.options
        if not (o.spare and o.warm_sessions) or self.warm_broken or self.spare is not None \
                or time.monotonic() < self.spare_retry_at:
            return
        self.spare_install = self.last_install
        self.spare = asyncio.create_task(self._start_spare())

    async def _start_spare(self) -> BlenderProcess:
        return await self._start_session(RenderSettings(
            None, self.options.work_dir / "output" / "spare"), self.spare_install)

    async def _start_session(self, settings: RenderSettings,
                             install: BlenderInstall) -> BlenderProcess:
        session = BlenderProcess(install, settings, serve=True,
                                 hang_timeout=self.options.hang_timeout,
                                 gpus=self.options.gpus)
        try:
            await session.start()
        except BaseException:
            await session.kill()
            raise
        return session

    async def _take_spare(self, install: BlenderInstall) -> BlenderProcess | None:
        task, self.spare = self.spare, None
        if task is None:
            return None
        if self.spare_install != install:
            # A spare of another Blender version serves no shot of this one.
            await _discard(task)
            return None
        try:
            spare = await task  # one that is still starting is ahead of a new one
        except BlenderFailed as exc:
            log.warning("spare Blender did not start (%s); next try in %.0f s", exc.reason,
                        SPARE_RETRY_AFTER)
            self.spare_retry_at = time.monotonic() + SPARE_RETRY_AFTER
            return None
        return spare if spare.alive else None

    async def _open_session(self, settings: RenderSettings,
                            install: BlenderInstall) -> BlenderProcess:
        """A warm session with the shot's file loaded: the spare if it can, else a new one."""
        spare = None if settings.allow_scripts else await self._take_spare(install)
        if spare is not None:
            try:
                await spare.open(settings)
                return spare
            except BlenderFailed as exc:
                await spare.kill()
                if exc.final:
                    raise
                log.warning("the spare Blender could not open %s (%s); starting another",
                            settings.blend_file, exc.reason)
            except BaseException:
                await spare.kill()
                raise
        return await self._start_session(settings, install)

    async def run(self, job: dict, http: aiohttp.ClientSession, base_url: Callable[[], str],
                  progress: Callable[[int, int, int], None], farm: str,
                  on_settings: SettingsCallback) -> str:
        """Render and upload every frame of `job`; returns Blender's log tail.
        `farm` keys the shot's layout; `on_settings` gets the effective settings once.
        `base_url()`: the coordinator in use now (uploads follow the node's failover).

        Raises BlenderFailed or LeaseLost."""
        if self.cleaning is not None:
            await asyncio.shield(self.cleaning)  # it may be removing what we would use
        try:
            fetched = await self.cache.ensure(http, base_url(), job["files"])
            project = await asyncio.to_thread(self.layouts.lay_out, farm, job["shot_id"],
                                              job["files"])
        except (CacheError, aiohttp.ClientError, OSError) as exc:
            raise BlenderFailed(f"could not fetch the shot's files: {exc}", "") from exc
        if fetched or not self.cleaned_once:
            self.cleaned_once = True
            self.cleaning = asyncio.create_task(self._clean(project))
        outdir = self.options.work_dir / "output" / job["attempt_id"]
        settings = RenderSettings(project / job["blend_path"], outdir, job_overrides(job),
                                  job["allow_scripts"] and self.options.allow_scripts,
                                  files_digest(job["files"]))
        uploads = Uploads(http, base_url, job["attempt_id"], self.options.upload_tries)
        install = choose(self.installs, job.get("blender_version"))
        self.last_install = install
        log.info("job %s: Blender %s (%s), device %s", job["job_id"], install.version or "?",
                 install.path, job.get("device") or "as the file says")

        async def on_frame(number: int, path: Path, seconds: float, fmt: str) -> None:
            uploads.add(number, path, seconds, fmt)

        try:
            log_tail = await self._render(settings, job["frames"], on_frame, progress,
                                          on_settings, install)
            await uploads.finish()
            return log_tail
        finally:
            uploads.cancel()
            shutil.rmtree(outdir, ignore_errors=True)

    async def _clean(self, in_use: Path) -> None:
        o = self.options
        try:
            await asyncio.to_thread(clean, self.layouts.root, self.cache, o.cache_size,
                                    o.cache_max_age, {in_use})
        except OSError as exc:
            log.warning("cache cleaning failed: %s", exc)
        finally:
            self.cleaning = None

    async def _render(self, settings: RenderSettings, frames: list[int],
                      on_frame: FrameCallback, progress: ProgressCallback,
                      on_settings: SettingsCallback = lambda settings: None,
                      install: BlenderInstall | None = None) -> str:
        install = install or self.installs[0]
        if not self.options.warm_sessions or self.warm_broken:
            return await self._render_cold(settings, frames, on_frame, progress, on_settings,
                                           install)
        key = (str(settings.blend_file), settings.files_digest,
               json.dumps(settings.render, sort_keys=True), settings.allow_scripts,
               install.command)
        if self.session is None or self.session_key != key or not self.session.alive or \
                self.session.frames_rendered >= self.options.recycle_after:
            await self.close()
            try:
                self.session = await self._open_session(settings, install)
                self.session_key = key
            except BlenderFailed as exc:
                await self.close()
                if exc.final:
                    raise
                # A file a warm session cannot load may still render the classic way.
                log.warning("warm Blender session failed to start; one process per chunk")
                return await self._render_cold(settings, frames, on_frame, progress,
                                               on_settings, install)
        self.session.settings.outdir = settings.outdir
        settings.outdir.mkdir(parents=True, exist_ok=True)
        session = self.session
        mark = len(session.log)
        if session.settings_used:
            on_settings(session.settings_used)
        try:
            await session.render_into(frames, settings.outdir, on_frame, progress)
        except BaseException:
            await self.close()
            raise
        return "\n".join(list(session.log)[max(0, mark - 5):][-60:])

    async def _render_cold(self, settings: RenderSettings, frames: list[int],
                           on_frame: FrameCallback, progress: ProgressCallback,
                           on_settings: SettingsCallback, install: BlenderInstall) -> str:
        proc = BlenderProcess(install, settings, serve=False,
                              hang_timeout=self.options.hang_timeout, frames=frames,
                              gpus=self.options.gpus)
        try:
            await proc.start()
            if proc.settings_used:
                on_settings(proc.settings_used)
            await proc.render(frames, on_frame, progress)
            code = await proc.proc.wait() if proc.proc else 0
            if code:
                raise BlenderFailed(f"Blender exited with code {code}", proc.log_tail())
            return proc.log_tail()
        finally:
            await proc.kill()


async def _discard(spare: asyncio.Task[BlenderProcess]) -> None:
    """Stop a spare, started or starting."""
    spare.cancel()
    try:
        session = await spare
    except (asyncio.CancelledError, BlenderFailed):
        return
    await session.close()


class Uploads:
    """Frames go up in order of arrival while Blender renders the next one."""

    def __init__(self, http: aiohttp.ClientSession, base_url: Callable[[], str],
                 attempt_id: str, tries: int = UPLOAD_TRIES):
        # A function: the coordinator in use now (the node fails over between them).
        self.http, self.base_url, self.attempt_id = http, base_url, attempt_id
        self.tries = tries
        self.queue: asyncio.Queue[tuple[int, Path, float, str] | None] = asyncio.Queue()
        self.task = asyncio.create_task(self._worker())

    def add(self, number: int, path: Path, seconds: float, fmt: str) -> None:
        self.queue.put_nowait((number, path, seconds, fmt))

    async def finish(self) -> None:
        self.queue.put_nowait(None)
        await self.task

    def cancel(self) -> None:
        self.task.cancel()

    async def _worker(self) -> None:
        while (item := await self.queue.get()) is not None:
            await self._upload(*item)

    async def _upload(self, number: int, path: Path, seconds: float, fmt: str) -> None:
        # A frame's extra outputs go first: a frame that shows done has them all.
        for extra in outputs.extras_of(path, number):
            await self._put(f"/frames/{number}/outputs", extra.path,
                            {"X-Output-Format": extra.format} if extra.format else {},
                            {"kind": extra.kind, "name": extra.name},
                            f"output {extra.name!r} of frame {number}")
        await self._put(f"/frames/{number}", path,
                        {"X-Render-Time": f"{seconds:.4f}", "X-Filename": path.name,
                         "X-Output-Format": fmt}, None, f"frame {number}")

    async def _put(self, route: str, path: Path, headers: dict, params: dict | None,
                   what: str) -> None:
        data = await asyncio.to_thread(path.read_bytes)
        sha = hashlib.sha256(data).hexdigest()
        headers = {**headers, "X-Sha256": sha, "Content-Type": "application/octet-stream"}
        delay, last = 0.5, ""
        for _ in range(self.tries):
            url = f"{self.base_url()}/api/attempts/{self.attempt_id}{route}"
            try:
                async with self.http.put(url, data=data, headers=headers,
                                         params=params) as resp:
                    if resp.status in (200, 201):
                        return
                    body = await resp.text()
                    if resp.status == 409:
                        raise LeaseLost(body)
                    if resp.status < 500 and resp.status != 429:
                        raise BlenderFailed(f"upload of {what} refused: {body}", "")
                    last = f"HTTP {resp.status}: {body[:200]}"
            except aiohttp.ClientError as exc:
                last = str(exc) or type(exc).__name__
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10)
        raise BlenderFailed(f"upload of {what} failed: {last}", "")
