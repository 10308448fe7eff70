"""Preview movies: an H.264 MP4 of a shot's landed frames, made by Debian's ffmpeg.

A shot that completes gets its movie by itself; `POST /api/shots/{id}/movie` makes one
now from whatever has landed. Movies are made one at a time per coordinator, by a
background task: ffmpeg runs as a niced child process (it dies with the coordinator),
reading the frames where they lie (EXR frames through their tone-mapped previews,
the same images the dashboard shows) through symlinks in `tmp/`, so neither the
event loop nor a node's upload waits for it. Requests that come while one is queued
or being made are folded into it (or into the next one, made once this one ends).
While a shot renders, each run of `segment_frames` frames that has all landed is
encoded into a part of its movie when nothing else waits; once it completes, only the
frames after the last full part are encoded and the parts joined (`movie_encoding.py`),
so a long shot's movie is ready seconds after its last frame.

Coordinators sharing a farm share its data dir, and each sees the shot complete: a
shot's movie (and its parts) is made under a lock on a file in its folder, so one
makes it; another that asked meanwhile waits for the lock and takes the movie made
(`state.json`) instead of making it again. The kernel frees a lock whose maker dies.

The state of each shot's movie (queued, making, ready, failed and why) is shown in the
shot's API and SSE summaries (`movie`) and kept next to the file, so it outlives a
restart.
"""
from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import shutil
import time
from collections import OrderedDict
from pathlib import Path
from typing import AsyncIterator, Callable

from .database import Database
from .movie_encoding import Encoder
from .storage import Storage
from .store import takeaway as takeaway_sql

log = logging.getLogger("brender.movies")

# Parts are made between movies, a little after frames land (several land together).
SEGMENT_PAUSE = 1.0
NO_FFMPEG = ("ffmpeg is not installed on the coordinator: install Debian's ffmpeg "
             "(apt install ffmpeg) to make preview movies")
# A shot that completed this recently gets its movie by itself: not the shots that
# completed before a coordinator with movies first started (those are made on request).
AUTO_SECONDS = 600
LOCK_POLL = 0.5    # seconds between tries of a lock another coordinator holds


def movie_dir(storage: Storage, shot_id: int) -> Path:
    return storage.root / "shots" / str(int(shot_id)) / "movie"


def movie_path(storage: Storage, shot_id: int) -> Path:
    """Where a shot's preview movie lives (storage owns the folders; this its file)."""
    return movie_dir(storage, shot_id) / "preview.mp4"


class Movies:
    def __init__(self, db: Database, storage: Storage, ffmpeg: str,
                 changed: Callable[[int], None], segment_frames: int = 24):
        self.db = db
        self.segment_frames = max(1, segment_frames)
        self.encoder = Encoder(storage)
        self._landed: OrderedDict[int, None] = OrderedDict()   # shots to make parts of
        self._cursors: dict[int, tuple[int, int]] = {}   # (last frame, index) of parts made
        self.storage = storage
        self.ffmpeg = ffmpeg
        self._changed = changed        # the shot's summary is sent again
        self._states: dict[int, dict] = {}
        # Shot -> when a user asked for its movie (None: made by itself on completion).
        self._queue: OrderedDict[int, float | None] = OrderedDict()
        self._making: int | None = None
        self._again: dict[int, float] = {}
        self._wake = asyncio.Event()
        self.made = 0

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

    def annotate(self, shot: dict) -> dict:
        """The shot with its movie's state; a shot seen just completed with frames its
        movie lacks (or no movie yet) gets one made."""
        shot_id = shot["id"]
        state = self._states.get(shot_id)
        recent = (shot.get("finished_at") or 0) >= time.time() - AUTO_SECONDS
        if shot.get("status") == "completed" and shot.get("frames_done") and recent:
            if state is None or (state["status"] in ("ready", "failed")
                                 and state.get("frames_done") != shot["frames_done"]):
                state = self.request(shot_id, shot["frames_done"])
        shot["movie"] = dict(state) if state else None
        return shot

    # -- asking ------------------------------------------------------------------------
    def request(self, shot_id: int, frames: int, asked_at: float | None = None) -> dict:
        """Make the shot's movie as soon as the one being made (if any) is done; a request
        while one is queued or being made is folded into it (or the next). `asked_at`:
        when a user asked (a movie started since then will do), else None (one answering
        the shot's count of done frames will do)."""
        if self._making == shot_id:
            self._again.setdefault(shot_id, asked_at or time.time())
        elif shot_id in self._queue:
            if asked_at is not None and self._queue[shot_id] is None:
                self._queue[shot_id] = asked_at
        else:
            self._queue[shot_id] = asked_at
            previous = self._states.get(shot_id) or {}
            self._set(shot_id, {**previous, "status": "queued", "frames": frames,
                                "frames_done": frames, "error": None})
            self._wake.set()
        return dict(self._states[shot_id])

    def landed(self, shot_id: int) -> None:
        """A frame of the shot landed: a part of its movie may be ready to make."""
        self._landed[shot_id] = None
        self._wake.set()

    def forget(self, shot_id: int) -> None:
        """The shot was deleted (its folder went to the trash)."""
        self._states.pop(shot_id, None)
        self._queue.pop(shot_id, None)
        self._landed.pop(shot_id, None)
        self._cursors.pop(shot_id, None)
        self._again.pop(shot_id, None)

    def _set(self, shot_id: int, state: dict) -> None:
        ready = state.get("status") == "ready"
        state["url"] = f"/api/shots/{shot_id}/movie" if ready else None
        self._states[shot_id] = state
        self._changed(shot_id)

    # -- making ------------------------------------------------------------------------
    async def run(self) -> None:
        """The background task: one movie at a time, in the order asked; parts of the
        movies of shots rendering when no movie waits."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue or self._landed:
                if self._queue:
                    await self._next_movie()
                    continue
                await asyncio.sleep(SEGMENT_PAUSE)
                if self._queue or not self._landed:
                    continue
                shot_id, _ = self._landed.popitem(last=False)
                try:
                    if await self._make_part(shot_id):
                        self._landed[shot_id] = None   # maybe more: after the others
                except asyncio.CancelledError:
                    raise
                except Exception:  # the movie is made whole at the end instead
                    log.exception("a part of shot %s's movie failed", shot_id)

    async def _next_movie(self) -> None:
        shot_id, asked_at = self._queue.popitem(last=False)
        self._making = shot_id
        try:
            async with self._lock(shot_id, wait=True) as held:
                if held:
                    await self._make(shot_id, asked_at)
                else:
                    self.forget(shot_id)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a movie never takes the farm down
            log.exception("movie of shot %s failed", shot_id)
            self._finish(shot_id, "failed", error=f"could not make the movie: {exc}")
        finally:
            self._making = None
        if shot_id in self._again:
            asked_at = self._again.pop(shot_id)
            source = await self.db.read(takeaway_sql.movie_source, shot_id)
            if source:
                self.request(shot_id, source["frames_done"], asked_at)

    async def close(self) -> None:
        self.encoder.kill()

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

    @contextlib.asynccontextmanager
    async def _lock(self, shot_id: int, wait: bool) -> AsyncIterator[bool]:
        """Hold the lock on making the shot's movie (another coordinator of the farm
        may hold it): True once held; False when the shot's folder is gone or, without
        `wait`, while another holds it."""
        loop = asyncio.get_running_loop()
        while (fd := await loop.run_in_executor(self.storage.executor, self._try_lock,
                                                shot_id)) == -1 and wait:
            await asyncio.sleep(LOCK_POLL)
        try:
            yield fd >= 0
        finally:
            if fd >= 0:
                os.close(fd)   # frees the lock

    def _try_lock(self, shot_id: int) -> int:
        """Runs in a file thread: the locked file's descriptor, -1 while another holds
        it, -2 when the shot's folder is gone."""
        folder = movie_dir(self.storage, shot_id)
        if not folder.parent.is_dir():
            return -2
        folder.mkdir(exist_ok=True)
        fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return -1
        return fd

    def _made_elsewhere(self, shot_id: int, source: dict, asked_at: float | None) -> dict | None:
        """Runs in a file thread: the state of the movie another coordinator of the farm
        made, when it answers this request."""
        try:
            state = json.loads((movie_dir(self.storage, shot_id) / "state.json").read_text())
        except (OSError, ValueError):
            return None
        if state.get("status") != "ready" or not movie_path(self.storage, shot_id).is_file():
            return None
        if asked_at is None:
            return state if state.get("frames_done") == source["frames_done"] else None
        return state if state.get("started_at", 0) >= asked_at else None

    async def _make(self, shot_id: int, asked_at: float | None) -> None:
        source = await self.db.read(takeaway_sql.movie_source, shot_id)
        if source is None:
            self.forget(shot_id)
            return
        made = await asyncio.get_running_loop().run_in_executor(
            self.storage.executor, self._made_elsewhere, shot_id, source, asked_at)
        if made is not None:
            if shot_id in self._states:
                self._set(shot_id, made)
            return
        ffmpeg = shutil.which(self.ffmpeg)
        if ffmpeg is None:
            log.warning("shot %s: %s", shot_id, NO_FFMPEG)
            self._finish(shot_id, "failed", error=NO_FFMPEG)
            return
        frames: list[dict] = []
        after = -10**9
        while page := await self.db.read_bulk(takeaway_sql.done_frames, shot_id, after):
            frames += page
            after = page[-1]["number"]
        if not frames:
            self._finish(shot_id, "failed", error="no frame of this shot has landed yet")
            return
        # `frames_done`: the shot's count this movie answers (made again when it grows).
        self._set(shot_id, {**self._states[shot_id], "status": "making",
                            "frames": len(frames), "frames_done": source["frames_done"]})
        started, started_at = time.monotonic(), time.time()
        self.encoder.cpu_seconds = 0.0
        output = self.storage.temp_path("movie").with_suffix(".mp4")
        try:
            if source["status"] == "completed" and len(frames) > self.segment_frames:
                error = await self._join_parts(ffmpeg, shot_id, frames, source["fps"], output)
            else:
                error = await self.encoder.encode(ffmpeg, frames, source["fps"], output)
            if error is None:
                await asyncio.get_running_loop().run_in_executor(
                    self.storage.executor, self._place, shot_id, output,
                    source["status"] == "completed")
        finally:
            output.unlink(missing_ok=True)
        if error is not None:
            self._finish(shot_id, "failed", error=error)
            return
        if source["status"] == "completed":
            self._cursors.pop(shot_id, None)
        self.made += 1
        log.info("movie of shot %s: %d frames in %.1f s", shot_id, len(frames),
                 time.monotonic() - started)
        self._finish(shot_id, "ready", frames=len(frames), made_at=time.time(),
                     started_at=started_at,
                     fps=source["fps"], seconds=round(time.monotonic() - started, 2),
                     cpu_seconds=round(self.encoder.cpu_seconds, 2))

    # -- parts -------------------------------------------------------------------------
    def _part_path(self, shot_id: int, index: int, frames: list[dict]) -> Path:
        return movie_dir(self.storage, shot_id) / "parts" / \
            f"{index:06d}_{frames[0]['number']}_{frames[-1]['number']}.h264"

    async def _encode_part(self, ffmpeg: str, shot_id: int, index: int, frames: list[dict],
                           fps: float) -> Path:
        """The part's file, made now unless it was while the shot rendered."""
        path = self._part_path(shot_id, index, frames)
        if path.is_file():
            return path
        temp = self.storage.temp_path("movie-part")
        try:
            error = await self.encoder.encode(ffmpeg, frames, fps, temp, raw=True)
            if error is not None:
                raise RuntimeError(error)
            if not movie_dir(self.storage, shot_id).parent.is_dir():  # deleted meanwhile
                raise RuntimeError("the shot was deleted")
            path.parent.mkdir(parents=True, exist_ok=True)
            os.replace(temp, path)
        finally:
            temp.unlink(missing_ok=True)
        return path

    async def _make_part(self, shot_id: int) -> bool:
        """Encode the next part of a rendering shot's movie if its frames have all
        landed; True when one was made (the next may be ready too). Parts are made in
        order from a cursor, reading one part's rows at a time (a 100,000-frame shot is
        not read whole at every landing)."""
        ffmpeg = shutil.which(self.ffmpeg)
        source = await self.db.read(takeaway_sql.movie_source, shot_id)
        if ffmpeg is None or source is None or source["status"] not in ("queued", "active",
                                                                         "paused"):
            return False
        size = self.segment_frames
        after, index = self._cursors.get(shot_id, (-10**9, 0))
        while True:
            part = await self.db.read_bulk(takeaway_sql.shot_frames, shot_id, after, size)
            if len(part) < size or any(r["status"] != "done" for r in part):
                self._cursors[shot_id] = (after, index)
                return False
            made = not self._part_path(shot_id, index, part).is_file()
            if made:
                # Not while another coordinator makes this shot's parts (or movie).
                async with self._lock(shot_id, wait=False) as held:
                    if not held:
                        self._cursors[shot_id] = (after, index)
                        return False
                    await self._encode_part(ffmpeg, shot_id, index, part, source["fps"])
            after, index = part[-1]["number"], index + 1
            if made:
                self._cursors[shot_id] = (after, index)
                return True

    async def _join_parts(self, ffmpeg: str, shot_id: int, frames: list[dict], fps: float,
                          output: Path) -> str | None:
        """A completed shot's movie: its parts (made while it rendered, or now) and the
        frames after the last full part, joined."""
        size = self.segment_frames
        full = len(frames) // size
        parts = [await self._encode_part(ffmpeg, shot_id, i, frames[i * size:(i + 1) * size],
                                         fps) for i in range(full)]
        tail = self.storage.temp_path("movie-tail")
        try:
            if frames[full * size:]:
                error = await self.encoder.encode(ffmpeg, frames[full * size:], fps, tail,
                                                  raw=True)
                if error is not None:
                    return error
                parts.append(tail)
            return await self.encoder.join(ffmpeg, parts, fps, output)
        finally:
            tail.unlink(missing_ok=True)

    def _place(self, shot_id: int, output: Path, completed: bool) -> None:
        """Runs in a file thread."""
        folder = movie_dir(self.storage, shot_id)
        if not folder.parent.is_dir():  # the shot was deleted meanwhile
            return
        folder.mkdir(exist_ok=True)
        os.replace(output, movie_path(self.storage, shot_id))
        if completed:   # its parts are in the movie now
            shutil.rmtree(folder / "parts", ignore_errors=True)
