"""SQL for what the artist takes home: a shot's landed frames (for its preview movie and its
zip download), one pass of its extra outputs, and the farm's figures for /metrics."""
from __future__ import annotations

import time

from ..states import FINAL_SHOTS
from .connection import Connection

PAGE = 1000


async def done_frames(c: Connection, shot_id: int, after: int, limit: int = PAGE,
                      last: int | None = None) -> list[dict]:
    """Up to `limit` of a shot's done frames numbered above `after` (and at most `last`),
    in order: number, name, data-dir path, preview path, sha256, size."""
    rows = await c.fetchall(
        """SELECT number, name, path, preview_path, sha256, size FROM frames
           WHERE shot_id = ? AND status = 'done' AND number > ? AND number <= ?
           ORDER BY number LIMIT ?""",
        (shot_id, after, 10**9 if last is None else last, limit))
    return [dict(r) for r in rows]


async def shot_frames(c: Connection, shot_id: int, after: int, limit: int = PAGE) -> list[dict]:
    """Up to `limit` of a shot's frames, done or not, numbered above `after`, in order
    (the parts of a rendering shot's movie are runs of these)."""
    rows = await c.fetchall(
        """SELECT number, status, name, path, preview_path FROM frames
           WHERE shot_id = ? AND number > ? ORDER BY number LIMIT ?""",
        (shot_id, after, limit))
    return [dict(r) for r in rows]


async def pass_outputs(c: Connection, shot_id: int, name: str, after: int,
                       limit: int = PAGE, last: int | None = None) -> list[dict]:
    """The extra outputs of one pass (`kind` 'pass', `name`) of a shot's frames numbered
    above `after`, in order; like `done_frames`."""
    rows = await c.fetchall(
        """SELECT number, path, sha256, size, format FROM frame_outputs
           WHERE shot_id = ? AND kind = 'pass' AND name = ? AND number > ? AND number <= ?
           ORDER BY number LIMIT ?""",
        (shot_id, name, after, 10**9 if last is None else last, limit))
    return [dict(r) for r in rows]


async def has_pass(c: Connection, shot_id: int, name: str) -> bool:
    return bool(await c.fetchval(
        """SELECT EXISTS (SELECT 1 FROM frame_outputs
           WHERE shot_id = ? AND kind = 'pass' AND name = ?)""", (shot_id, name)))


async def movie_source(c: Connection, shot_id: int) -> dict | None:
    """What a shot's movie is made with: its status, fps and frames done."""
    row = await c.fetchone("SELECT id, status, fps, frames_done FROM shots WHERE id = ?",
                           (shot_id,))
    return dict(row) if row else None


async def metrics(c: Connection, recent_seconds: float = 3600.0) -> dict:
    """One read for a scrape: frames queued, jobs by status, and the render seconds of
    the shots not ended or ended within `recent_seconds`."""
    final = tuple(FINAL_SHOTS) + ("failed",)
    marks = ", ".join("?" * len(final))
    queued = await c.fetchval(
        """SELECT COALESCE(SUM(frames_total - frames_done), 0) FROM shots
           WHERE status IN ('queued', 'active', 'paused')""")
    jobs = await c.fetchall("SELECT status, COUNT(*) AS n FROM jobs GROUP BY status")
    shots = await c.fetchall(
        f"""SELECT id, name, status, render_time_sum, render_time_count, frames_done
            FROM shots WHERE status NOT IN ({marks}) OR finished_at >= ?
            ORDER BY id""", (*final, time.time() - recent_seconds))
    return {"frames_queued": queued or 0,
            "jobs": {r["status"]: r["n"] for r in jobs},
            "shots": [dict(r) for r in shots]}
