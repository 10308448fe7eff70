"""Coordinators sharing a farm's data dir each see a shot complete and ask for its
preview movie: one makes it (real ffmpeg), the other takes it, and nothing is left
in tmp/. The database is a stand-in answering the two reads movies make."""
from __future__ import annotations

import asyncio
import json
import shutil
import time

import pytest
from PIL import Image

from coordinator.movies import Movies, movie_dir, movie_path
from coordinator.storage import Storage
from coordinator.store import takeaway as takeaway_sql

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")
SHOT = 7
FRAMES = 12


class OneShot:
    """The reads of a completed shot with FRAMES done PNG frames."""

    def __init__(self, storage: Storage):
        folder = storage.root / "shots" / str(SHOT) / "frames"
        folder.mkdir(parents=True)
        self.frames = []
        for n in range(1, FRAMES + 1):
            Image.new("RGB", (32, 18), (n * 20, 0, 0)).save(folder / f"{n:04d}.png")
            self.frames.append({"number": n, "name": f"{n:04d}.png", "preview_path": None,
                                "path": f"shots/{SHOT}/frames/{n:04d}.png"})

    async def read(self, query, shot_id):
        assert query is takeaway_sql.movie_source and shot_id == SHOT
        return {"id": SHOT, "status": "completed", "fps": 24.0, "frames_done": FRAMES}

    async def read_bulk(self, query, shot_id, after, *limit):
        assert query is takeaway_sql.done_frames
        return [f for f in self.frames if f["number"] > after]


async def settled(*makers: Movies) -> None:
    for _ in range(400):
        if all(m._states[SHOT]["status"] in ("ready", "failed") for m in makers):
            return
        await asyncio.sleep(0.05)
    raise AssertionError([m._states[SHOT] for m in makers])


async def test_two_coordinators_asking_at_once_make_one_movie(tmp_path):
    storage = Storage(tmp_path / "data")
    db = OneShot(storage)
    a, b = (Movies(db, storage, "ffmpeg", lambda shot_id: None) for _ in range(2))
    tasks = [asyncio.create_task(m.run()) for m in (a, b)]
    try:
        shot = {"id": SHOT, "status": "completed", "frames_done": FRAMES,
                "finished_at": time.time()}
        a.annotate(dict(shot))
        b.annotate(dict(shot))
        await settled(a, b)
        assert a.made + b.made == 1
        assert a._states[SHOT]["status"] == b._states[SHOT]["status"] == "ready"
        assert a._states[SHOT]["made_at"] == b._states[SHOT]["made_at"]
        saved = json.loads((movie_dir(storage, SHOT) / "state.json").read_text())
        assert saved["frames"] == FRAMES and movie_path(storage, SHOT).stat().st_size > 0
        assert list(storage.tmp.iterdir()) == []

        # A user asking again later gets a movie made after asking, not the old one.
        before = saved["made_at"]
        b.request(SHOT, FRAMES, asked_at=time.time())
        await settled(b)
        assert b.made + a.made == 2 and b._states[SHOT]["made_at"] > before
        # The first coordinator, asked by itself, takes that newer movie without making it.
        a._states[SHOT]["frames_done"] = 0
        a.annotate(dict(shot))
        await settled(a)
        assert a.made + b.made == 2 and a._states[SHOT]["made_at"] == b._states[SHOT]["made_at"]
        assert list(storage.tmp.iterdir()) == []
    finally:
        for task in tasks:
            task.cancel()
        storage.executor.shutdown()
