"""ffmpeg at work for `movies.py`: frames to an H.264 MP4, and MP4 parts joined.

Frames are read where they lie (EXR frames through their tone-mapped previews) via
symlinks numbered 1.. in `tmp/` (files only: `tmp/` is emptied at start); a frame of
another kind than most is converted to PNG. ffmpeg runs as a niced child that dies
with the coordinator, started from a thread (see `_spawn`). Parts made with the same
settings join without re-encoding (raw H.264 streams, one after the other, put in an
MP4 as they are), which is how a long shot's movie is ready soon after its last
frame: its parts were made while it rendered.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

from .storage import Storage

SEQUENCE_EXTENSIONS = ("png", "jpg", "jpeg", "tif", "tiff", "bmp", "tga", "webp")
FFMPEG_NICENESS = 10
# x264's fastest preset: a preview is ready sooner (240 1080p frames take ~6 CPU-s to
# encode, half of veryfast's), at the price of a larger file.
PRESET = "ultrafast"
MAX_STDERR = 2000


def frame_rate(fps: float) -> str:
    """ffmpeg's rate for a shot's fps: 24/1.001 is 24000/1001, not a rounded float."""
    rate = Fraction(fps).limit_denominator(1001)
    return f"{rate.numerator}/{rate.denominator}"


# ffmpeg dies with the coordinator (the kernel's parent-death signal, set by util-linux's
# setpriv, which is on every Debian): the coordinator cannot set it in the child itself
# without a fork (below).
_DIES_WITH_PARENT = ["setpriv", "--pdeathsig", "KILL", "--"] if shutil.which("setpriv") else []


def _spawn(cmd: list[str]) -> subprocess.Popen:
    """Start ffmpeg from a worker thread with the standard library, which vforks:
    uvloop forks, copying the coordinator's page tables, and held the event loop
    25-35 ms a run at 300 MB (5,000 nodes), once a second while a shot's parts were
    made. Niced afterwards: the coordinator and the nodes go first."""
    proc = subprocess.Popen(_DIES_WITH_PARENT + cmd, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, proc.pid, FFMPEG_NICENESS)
    return proc


def _finish(proc: subprocess.Popen) -> bytes:
    """Wait in a worker thread for ffmpeg's end: its stderr."""
    _, stderr = proc.communicate()
    return stderr


class Encoder:
    def __init__(self, storage: Storage):
        self.storage = storage
        self.cpu_seconds = 0.0      # of the ffmpeg runs since the last reset
        self._proc: subprocess.Popen | None = None

    def kill(self) -> None:
        if self._proc is not None and self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.kill()

    async def encode(self, ffmpeg: str, frames: list[dict], fps: float,
                     output: Path, raw: bool = False) -> str | None:
        """Frames (rows of `store/takeaway.done_frames`, in order) to `output`, an MP4
        (or a raw H.264 stream, a part to `join`); None when written, else why not."""
        prefix = self.storage.temp_path("movie")
        links: list[Path] = []
        loop = asyncio.get_running_loop()
        try:
            ext = await loop.run_in_executor(self.storage.executor, self._sequence, frames,
                                             prefix, links)
            rate = frame_rate(fps)
            return await self._run([
                ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
                "-framerate", rate, "-start_number", "1", "-i", f"{prefix}-%06d.{ext}",
                # yuv420p needs even sizes.
                "-vf", "scale=trunc(iw/2)*2:trunc(ih/2)*2,format=yuv420p",
                "-c:v", "libx264", "-preset", PRESET, "-crf", "23",
                "-pix_fmt", "yuv420p", "-r", rate,
                *(["-f", "h264"] if raw else ["-movflags", "+faststart", "-f", "mp4"]),
                str(output)])
        finally:
            for link in links:
                link.unlink(missing_ok=True)

    async def join(self, ffmpeg: str, parts: list[Path], fps: float,
                   output: Path) -> str | None:
        """Raw H.264 parts made by `encode` at this fps, one after the other, into one
        MP4 (copied, not encoded again)."""
        stream = self.storage.temp_path("movie-stream")
        await asyncio.get_running_loop().run_in_executor(
            self.storage.executor, _concatenate, parts, stream)
        try:
            return await self._run([
                ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
                "-f", "h264", "-framerate", frame_rate(fps), "-i", str(stream),
                "-c", "copy", "-movflags", "+faststart", "-f", "mp4", str(output)])
        finally:
            stream.unlink(missing_ok=True)

    async def _run(self, cmd: list[str]) -> str | None:
        loop = asyncio.get_running_loop()
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        self._proc = proc = await loop.run_in_executor(None, _spawn, cmd)
        try:
            stderr = await loop.run_in_executor(None, _finish, proc)
        except asyncio.CancelledError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            raise
        finally:
            self._proc = None
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.cpu_seconds += (after.ru_utime - before.ru_utime) + \
            (after.ru_stime - before.ru_stime)
        if proc.returncode != 0:
            text = stderr.decode(errors="replace").strip()[-MAX_STDERR:]
            return f"ffmpeg failed (exit {proc.returncode}): {text or 'no message'}"
        return None

    def _sequence(self, frames: list[dict], prefix: Path, links: list[Path]) -> str:
        """Number the frames 1.. as `{prefix}-000001.ext` (symlinks to the frames, or to
        the previews of EXR frames); frames of another kind than most are converted."""
        sources = [self._viewable(frame) for frame in frames]
        kinds = [p.suffix.lower().lstrip(".") for p in sources]
        ext = max(set(kinds), key=kinds.count)
        if ext not in SEQUENCE_EXTENSIONS:
            ext = "png"
        for index, (path, kind) in enumerate(zip(sources, kinds), 1):
            link = Path(f"{prefix}-{index:06d}.{ext}")
            links.append(link)
            if kind == ext:
                os.symlink(path, link)
            else:
                _convert(path, link)
        return ext

    def _viewable(self, frame: dict) -> Path:
        """The image of a frame ffmpeg reads: the frame, or its tone-mapped preview."""
        if frame["preview_path"]:
            preview = self.storage.inside(frame["preview_path"])
            if preview.is_file():
                return preview
        return self.storage.inside(frame["path"])


def _convert(path: Path, dest: Path) -> None:
    from PIL import Image

    from . import thumbnails

    with open(path, "rb") as f:
        is_exr = f.read(4) == thumbnails.EXR_MAGIC
    image = thumbnails.tone_map(thumbnails._pick_rgba(path)) if is_exr else Image.open(path)
    image.convert("RGB").save(dest, "PNG", compress_level=1)


def _concatenate(parts: list[Path], dest: Path) -> None:
    with open(dest, "wb") as out:
        for part in parts:
            with open(part, "rb") as f:
                shutil.copyfileobj(f, out, 1024 * 1024)
