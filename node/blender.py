"""Blender processes: a warm session per shot, or one process per chunk."""
from __future__ import annotations

import asyncio
import collections
import json
import os
import re
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Awaitable, Callable, Sequence

from brender_protocol.formats import DEFAULT_FORMAT

from .failures import classify
from .installs import BlenderInstall, command_for

DRIVER = Path(__file__).with_name("blender_driver.py")
PROGRESS = re.compile(r"^Fra:(-?\d+) .*?Sample (\d+)/(\d+)")
LOG_LINES = 300
# Causes that are the shot's: the file would fail the same in any Blender process.
SHOTS_OWN = ("missing file", "cannot read file", "no camera", "movie output")

FrameCallback = Callable[[int, Path, float, str], Awaitable[None]]
ProgressCallback = Callable[[int, int, int], None]


class BlenderFailed(Exception):
    """A render failed. `final`: the cause is the shot's (a bad override, a file Blender
    cannot read), so another way of running Blender would fail the same."""

    def __init__(self, reason: str, log_tail: str, final: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.log_tail = log_tail
        self.final = final


@dataclass
class RenderSettings:
    blend_file: Path | None  # None: a spare, started before its shot is known
    outdir: Path
    render: dict = field(default_factory=dict)  # the shot's overrides: only keys set
    allow_scripts: bool = False
    files_digest: str = ""  # what the file's layout holds (runner.files_digest)


class BlenderProcess:
    """One Blender process running the driver; `serve` keeps it for many requests."""

    def __init__(self, blender: BlenderInstall | str, settings: RenderSettings, serve: bool,
                 hang_timeout: float, frames: list[int] | None = None,
                 gpus: Sequence[int] | None = None):
        self.blender = blender if isinstance(blender, BlenderInstall) \
            else BlenderInstall(blender, command_for(blender))
        self.gpus = gpus  # the node's --gpus selection (None: all)
        self.settings = settings
        self.serve = serve
        self.hang_timeout = hang_timeout
        self.frames = frames or []
        self.proc: asyncio.subprocess.Process | None = None
        self.log: collections.deque[str] = collections.deque(maxlen=LOG_LINES)
        self.frames_rendered = 0
        self.settings_used: dict | None = None  # what the file renders with, once prepared

    def command(self) -> list[str]:
        s = self.settings
        cmd = [*self.blender.command, "-b", "--factory-startup",
               "--enable-autoexec" if s.allow_scripts else "--disable-autoexec"]
        if s.blend_file is not None:
            cmd.append(str(s.blend_file))
        cmd += ["--python-exit-code", "1", "--python", str(DRIVER), "--",
                "--outdir", str(s.outdir), "--render", json.dumps(s.render)]
        if self.gpus is not None:
            cmd += ["--gpus", ",".join(str(i) for i in self.gpus)]
        if self.serve:
            cmd.append("--serve")
        else:
            cmd += ["--frames", ",".join(str(f) for f in self.frames)]
        return cmd

    async def start(self) -> None:
        self.settings.outdir.mkdir(parents=True, exist_ok=True)
        self.proc = await asyncio.create_subprocess_exec(
            *self.command(), stdin=asyncio.subprocess.PIPE if self.serve else None,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            start_new_session=True, limit=1 << 20, preexec_fn=_die_with_parent)
        event, _ = await self._next_event(None)
        if event != "READY":
            raise BlenderFailed(f"Blender did not start: {self._classify(None)}",
                                self.log_tail())

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(list(self.log)[-lines:])

    async def open(self, settings: RenderSettings) -> None:
        """Load a shot's file into a spare (a session started without one)."""
        if settings.allow_scripts or settings.blend_file is None:
            raise ValueError("a spare opens files with their scripts off, and needs a file")
        await self._request({"open": str(settings.blend_file), "render": settings.render})
        event, _ = await self._next_event(None)
        if event != "READY":
            raise BlenderFailed(f"Blender could not open the file: {event}", self.log_tail())
        self.settings = settings

    async def render_into(self, frames: list[int], outdir: Path, on_frame: FrameCallback,
                          on_progress: ProgressCallback) -> None:
        """Ask a warm session for `frames`, written into `outdir`."""
        await self._request({"frames": frames, "outdir": str(outdir)})
        await self.render(frames, on_frame, on_progress)

    async def _request(self, request: dict) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        try:
            self.proc.stdin.write((json.dumps(request) + "\n").encode())
            await self.proc.stdin.drain()
        except ConnectionError:
            code = await self.proc.wait()
            raise self._failed(code) from None

    async def render(self, frames: list[int], on_frame: FrameCallback,
                     on_progress: ProgressCallback) -> None:
        """Read events until the request is done, calling back as each file is written."""
        assert self.proc is not None
        while True:
            event, data = await self._next_event(on_progress)
            if event == "FRAME":
                self.frames_rendered += 1
                await on_frame(int(data["frame"]), Path(data["path"]), float(data["seconds"]),
                               str(data.get("format") or DEFAULT_FORMAT))
            elif event == "DONE":
                return

    async def _next_event(self, on_progress: ProgressCallback | None) -> tuple[str, dict]:
        assert self.proc is not None and self.proc.stdout is not None
        while True:
            try:
                raw = await asyncio.wait_for(self.proc.stdout.readline(), self.hang_timeout)
            except asyncio.TimeoutError:
                await self.kill()
                raise BlenderFailed(
                    f"Blender hung: no output for {self.hang_timeout:.0f} s; killed",
                    self.log_tail()) from None
            if not raw:
                raise self._failed(await self.proc.wait())
            line = raw.decode(errors="replace").rstrip()
            self.log.append(line)
            if line.startswith("BRENDER_"):
                kind, _, payload = line[8:].partition(" ")
                data = json.loads(payload) if payload.startswith("{") else {}
                if kind == "SETTINGS":
                    self.settings_used = data
                    continue
                if kind in ("ERROR", "WARNING", "FAILED"):
                    continue  # the exit that follows carries a failure; warnings stay in the log
                return kind, data
            if on_progress:
                match = PROGRESS.match(line)
                if match:
                    on_progress(*(int(g) for g in match.groups()))

    def _classify(self, returncode: int | None) -> str:
        return classify(list(self.log), returncode, self.settings_used)

    def _failed(self, returncode: int | None) -> BlenderFailed:
        """The failure Blender's exit means, named from its log."""
        reason = self._classify(returncode)
        final = reason.startswith(SHOTS_OWN) or \
            any(line.startswith("BRENDER_FAILED ") for line in self.log)
        return BlenderFailed(reason, self.log_tail(), final=final)

    async def close(self) -> None:
        if not self.alive:
            return
        assert self.proc is not None
        if self.serve and self.proc.stdin is not None:
            try:
                self.proc.stdin.write(b'{"quit": true}\n')
                await self.proc.stdin.drain()
                await asyncio.wait_for(self.proc.wait(), 10)
                return
            except (ConnectionError, asyncio.TimeoutError):
                pass
        await self.kill()

    async def kill(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        await self.proc.wait()


def _die_with_parent() -> None:
    """Linux: Blender gets SIGKILL if the node dies, so no orphan keeps rendering."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass

