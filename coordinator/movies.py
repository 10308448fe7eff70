"""Preview movies: an H.264 MP4 of a shot's landed frames, made by Debian's ffmpeg.

A shot that completes gets its movie by itself; `POST /api/shots/{id}/movie` makes one
now from whatever has landed. Movies are made one at a time per coordinator, by a
background task: ffmpeg runs as a niced child process (it dies with the coordinator),
reading the frames where they lie (EXR frames through their tone-mapped previews,
the same images the dashboard shows) through symlinks in `tmp/`, so neither the
event loop nor a node's upload waits for it. Requests that come while one is queued
or being made are folded into it (or into the next one, made once this one ends).

The state of each shot's movie (queued, making, ready, failed and why) is shown in the
shot's API and SSE summaries (`movie`) and kept next to the file, so it outlives a
restart.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import resource
import shutil
import time
from collections import OrderedDict
from fractions import Fraction
from pathlib import Path
from typing import Callable

from .database import Database
from .storage import Storage
from .store import deliveries as delivery_sql

log = logging.getLogger("brender.movies")

NO_FFMPEG = ("ffmpeg is not installed on the coordinator: install Debian's ffmpeg "
             "(apt install ffmpeg) to make preview movies")
# ffmpeg's image sequence reader takes one kind of image; frames of another kind are
# converted to PNG first (rare: a shot's frames share its format).
SEQUENCE_EXTENSIONS = ("png", "jpg", "jpeg", "tif", "tiff", "bmp", "tga", "webp")
FFMPEG_NICENESS = 10
# x264's fastest preset: a preview is ready sooner (240 1080p frames take ~6 CPU-s to
# encode, half of veryfast's), at the price of a larger file.
PRESET = "ultrafast"
MAX_STDERR = 2000
# A shot that completed this recently gets its movie by itself: not the shots that
# completed before a coordinator with movies first started (those are made on request).
AUTO_SECONDS = 600


def movie_dir(storage: Storage, shot_id: int) -> Path:
    return storage.root / "shots" / str(int(shot_id)) / "movie"


def movie_path(storage: Storage, shot_id: int) -> Path:
    """Where a shot's preview movie lives (storage owns the folders; this its file)."""
    return movie_dir(storage, shot_id) / "preview.mp4"


def frame_rate(fps: float) -> str:
    """ffmpeg's rate for a shot's fps: 23.976 is 24000/1001, not a rounded float."""
    rate = Fraction(fps).limit_denominator(1001)
    return f"{rate.numerator}/{rate.denominator}"


def _child_setup() -> None:
    """In ffmpeg's process before it starts: a lower priority than the coordinator and
    the nodes, and death with the coordinator."""
    with contextlib.suppress(OSError):
        os.nice(FFMPEG_NICENESS)
    from .thumbnails import die_with_parent
    die_with_parent()


class Movies:
    def __init__(self, db: Database, storage: Storage, ffmpeg: str,
                 changed: Callable[[int], None]):
        self.db = db
        self.storage = storage
        self.ffmpeg = ffmpeg
        self._changed = changed        # the shot's summary is sent again
        self._states: dict[int, dict] = {}
        self._queue: OrderedDict[int, None] = OrderedDict()
        self._making: int | None = None
        self._again: set[int] = set()
        self._wake = asyncio.Event()
        self._proc: asyncio.subprocess.Process | None = None
        self.made = 0
        self.cpu_seconds = 0.0   # of the last ffmpeg run (user + system)

    # -- what the API shows ---------------------------------------------------------
    def load(self) -> None:
        """The states kept next to the movies (a worker thread, at start). A movie that
        was queued or being made when the coordinator stopped is made no more."""
        for state_file in (self.storage.root / "shots").glob("*/movie/state.json"):
            try:
                state = json.loads(state_file.read_text())
                shot_id = int(state_file.parent.parent.name)
            except (OSError, ValueError):
                continue
            if state.get("status") in ("ready", "failed"):
                self._states[shot_id] = state

    def state(self, shot_id: int) -> dict | None:
        state = self._states.get(shot_id)
        return dict(state) if state else None

    def annotate(self, shot: dict) -> dict:
        """The shot with its movie's state; a shot seen just completed with frames its
        movie lacks (or no movie yet) gets one made."""
        shot_id = shot["id"]
        state = self._states.get(shot_id)
        recent = (shot.get("finished_at") or 0) >= time.time() - AUTO_SECONDS
        if shot.get("status") == "completed" and shot.get("frames_done") and recent:
            if state is None or (state["status"] in ("ready", "failed")
                                 and state.get("frames") != shot["frames_done"]):
                state = self.request(shot_id, shot["frames_done"])
        shot["movie"] = dict(state) if state else None
        return shot

    # -- asking ------------------------------------------------------------------------
    def request(self, shot_id: int, frames: int) -> dict:
        """Make the shot's movie as soon as the one being made (if any) is done; a request
        while one is queued or being made is folded into it (or the next)."""
        if self._making == shot_id:
            self._again.add(shot_id)
        elif shot_id not in self._queue:
            self._queue[shot_id] = None
            previous = self._states.get(shot_id) or {}
            self._set(shot_id, {**previous, "status": "queued", "frames": frames,
                                "error": None})
            self._wake.set()
        return dict(self._states[shot_id])

    def forget(self, shot_id: int) -> None:
        """The shot was deleted (its folder went to the trash)."""
        self._states.pop(shot_id, None)
        self._queue.pop(shot_id, None)
        self._again.discard(shot_id)

    def _set(self, shot_id: int, state: dict) -> None:
        ready = state.get("status") == "ready"
        state["url"] = f"/api/shots/{shot_id}/movie" if ready else None
        self._states[shot_id] = state
        self._changed(shot_id)

    # -- making ------------------------------------------------------------------------
    async def run(self) -> None:
        """The background task: one movie at a time, in the order asked."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                shot_id, _ = self._queue.popitem(last=False)
                self._making = shot_id
                try:
                    await self._make(shot_id)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # a movie never takes the farm down
                    log.exception("movie of shot %s failed", shot_id)
                    self._finish(shot_id, "failed", error=f"could not make the movie: {exc}")
                finally:
                    self._making = None
                if shot_id in self._again:
                    self._again.discard(shot_id)
                    source = await self.db.read(delivery_sql.movie_source, shot_id)
                    if source:
                        self.request(shot_id, source["frames_done"])

    async def close(self) -> None:
        if self._proc is not None and self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.kill()

    def _finish(self, shot_id: int, status: str, **fields: object) -> None:
        if shot_id not in self._states:  # deleted meanwhile
            return
        state = {**self._states[shot_id], "status": status, "error": None, **fields}
        self._set(shot_id, state)
        with contextlib.suppress(OSError):
            self._save(shot_id, state)

    def _save(self, shot_id: int, state: dict) -> None:
        folder = movie_dir(self.storage, shot_id)
        if not folder.parent.is_dir():
            return
        folder.mkdir(exist_ok=True)
        temp = self.storage.temp_path("movie-state")
        temp.write_text(json.dumps(state))
        os.replace(temp, folder / "state.json")

    async def _make(self, shot_id: int) -> None:
        source = await self.db.read(delivery_sql.movie_source, shot_id)
        if source is None:
            self.forget(shot_id)
            return
        ffmpeg = shutil.which(self.ffmpeg)
        if ffmpeg is None:
            log.warning("shot %s: %s", shot_id, NO_FFMPEG)
            self._finish(shot_id, "failed", error=NO_FFMPEG)
            return
        frames: list[dict] = []
        after = -10**9
        while page := await self.db.read_bulk(delivery_sql.done_frames, shot_id, after):
            frames += page
            after = page[-1]["number"]
        if not frames:
            self._finish(shot_id, "failed", error="no frame of this shot has landed yet")
            return
        self._set(shot_id, {**self._states[shot_id], "status": "making",
                            "frames": len(frames)})
        started = time.monotonic()
        prefix = self.storage.temp_path("movie")
        links: list[Path] = []
        output = Path(f"{prefix}.mp4")
        try:
            ext = await asyncio.get_running_loop().run_in_executor(
                self.storage.executor, self._sequence, frames, prefix, links)
            error = await self._encode(ffmpeg, f"{prefix}-%06d.{ext}", source["fps"], output)
            if error is None:
                await asyncio.get_running_loop().run_in_executor(
                    self.storage.executor, self._place, shot_id, output)
        finally:
            for path in links + [output]:
                path.unlink(missing_ok=True)
        if error is not None:
            self._finish(shot_id, "failed", error=error)
            return
        self.made += 1
        log.info("movie of shot %s: %d frames in %.1f s", shot_id, len(frames),
                 time.monotonic() - started)
        self._finish(shot_id, "ready", frames=len(frames), made_at=time.time(),
                     fps=source["fps"], seconds=round(time.monotonic() - started, 2),
                     cpu_seconds=round(self.cpu_seconds, 2))

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
                self._convert(path, link)
        return ext

    def _viewable(self, frame: dict) -> Path:
        """The image of a frame ffmpeg reads: the frame, or its tone-mapped preview."""
        if frame["preview_path"]:
            preview = self.storage.inside(frame["preview_path"])
            if preview.is_file():
                return preview
        return self.storage.inside(frame["path"])

    @staticmethod
    def _convert(path: Path, dest: Path) -> None:
        from PIL import Image

        from . import thumbnails

        with open(path, "rb") as f:
            is_exr = f.read(4) == thumbnails.EXR_MAGIC
        image = thumbnails.tone_map(thumbnails._pick_rgba(path)) if is_exr else Image.open(path)
        image.convert("RGB").save(dest, "PNG", compress_level=1)

    async def _encode(self, ffmpeg: str, pattern: str, fps: float, output: Path) -> str | None:
        """Run ffmpeg; None when the movie was written, else why not."""
        rate = frame_rate(fps)
        cmd = [ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
               "-framerate", rate, "-start_number", "1", "-i", pattern,
               # yuv420p needs even sizes; frames of another size are fitted to the first.
               "-vf", "scale=trunc(iw/2)*2:trunc(ih/2)*2,format=yuv420p",
               "-c:v", "libx264", "-preset", PRESET, "-crf", "23",
               "-pix_fmt", "yuv420p", "-r", rate, "-movflags", "+faststart",
               "-f", "mp4", str(output)]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        self._proc = proc = await asyncio.create_subprocess_exec(
            *cmd, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE, preexec_fn=_child_setup)
        try:
            _, stderr = await proc.communicate()
        except asyncio.CancelledError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            raise
        finally:
            self._proc = None
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.cpu_seconds = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        if proc.returncode != 0:
            text = stderr.decode(errors="replace").strip()[-MAX_STDERR:]
            return f"ffmpeg failed (exit {proc.returncode}): {text or 'no message'}"
        return None

    def _place(self, shot_id: int, output: Path) -> None:
        folder = movie_dir(self.storage, shot_id)
        if not folder.parent.is_dir():  # the shot was deleted meanwhile
            return
        folder.mkdir(exist_ok=True)
        os.replace(output, movie_path(self.storage, shot_id))
