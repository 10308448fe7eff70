"""SQL for frames: the fenced upload record, thumbnails, listings."""
from __future__ import annotations

import json
import time
from typing import Any, Callable

from ..database import Database

FRAME_SELECT = """SELECT f.*, n.name AS node_name FROM frames f
                  LEFT JOIN nodes n ON n.id = f.node_id"""


class StaleAttempt(Exception):
    """The upload's attempt no longer holds the job's lease."""


class NotInJob(Exception):
    pass


def frame_dict(row: Any) -> dict:
    d = dict(row)
    shot_id = d["shot_id"]
    done = d["status"] == "done"
    base = f"/files/shots/{shot_id}"
    d["image_url"] = f"{base}/frames/{d['name']}" if done and d.get("name") else None
    thumb = d.pop("thumbnail_path", None)
    preview = d.pop("preview_path", None)
    d["thumbnail_url"] = f"{base}/thumbnails/{thumb.rsplit('/', 1)[-1]}" if thumb else None
    if preview:
        d["preview_url"] = f"{base}/previews/{preview.rsplit('/', 1)[-1]}"
    else:
        d["preview_url"] = d["image_url"]
    d.pop("path", None)
    d.pop("attempt_id", None)
    return d


async def check_lease(db: Database, attempt_id: str, number: int) -> dict:
    """Cheap pre-check before the body is read: is this upload still wanted?"""
    row = await db.fetchone(
        """SELECT j.id AS job_id, j.shot_id, j.node_id, f.status, f.attempt_id, f.sha256
           FROM jobs j JOIN frames f ON f.shot_id = j.shot_id AND f.number = ? AND f.job_id = j.id
           WHERE j.attempt_id = ? AND j.status = 'running'""", (number, attempt_id))
    if row is None:
        job = await db.fetchone("SELECT frames FROM jobs WHERE attempt_id = ?", (attempt_id,))
        if job is not None and number not in json.loads(job["frames"]):
            raise NotInJob()
        raise StaleAttempt()
    return dict(row)


async def record(db: Database, attempt_id: str, number: int, *, name: str, path: str,
                 sha256: str, size: int, render_time: float | None, width: int | None,
                 height: int | None, place: Callable[[], None]) -> tuple[dict, bool]:
    """Record a frame under the lease fence. Returns (lease row, newly recorded).

    `place` moves the received file into its final place inside the transaction,
    so a fenced (stale) upload never touches the frame on disk, and a crash
    between the two leaves at worst a file the database does not count.
    """
    async with db.transaction() as tx:
        row = await (await tx.execute(
            """SELECT j.id AS job_id, j.shot_id, j.node_id, f.status, f.sha256
               FROM jobs j JOIN frames f ON f.shot_id = j.shot_id AND f.number = ? AND f.job_id = j.id
               WHERE j.attempt_id = ? AND j.status = 'running'""",
            (number, attempt_id))).fetchone()
        if row is None:
            raise StaleAttempt()
        if row["status"] == "done":
            return dict(row), False
        place()
        await tx.execute(
            """UPDATE frames SET status = 'done', name = ?, path = ?, sha256 = ?, size = ?,
               render_time = ?, width = ?, height = ?, node_id = ?, attempt_id = ?,
               rendered_at = ? WHERE shot_id = ? AND number = ?""",
            (name, path, sha256, size, render_time, width, height, row["node_id"],
             attempt_id, time.time(), row["shot_id"], number))
        await tx.execute(
            """UPDATE shots SET frames_done = frames_done + 1,
               render_time_sum = render_time_sum + COALESCE(?, 0),
               render_time_count = render_time_count + (? IS NOT NULL) WHERE id = ?""",
            (render_time, render_time, row["shot_id"]))
        return dict(row), True


async def set_images(db: Database, shot_id: int, number: int, thumbnail: str,
                     preview: str | None, width: int, height: int) -> None:
    async with db.transaction() as tx:
        await tx.execute(
            """UPDATE frames SET thumbnail_path = ?, preview_path = ?, width = ?, height = ?
               WHERE shot_id = ? AND number = ?""",
            (thumbnail, preview, width, height, shot_id, number))


async def get(db: Database, shot_id: int, number: int) -> dict | None:
    row = await db.fetchone(FRAME_SELECT + " WHERE f.shot_id = ? AND f.number = ?",
                            (shot_id, number))
    return frame_dict(row) if row else None


async def for_shot(db: Database, shot_id: int, offset: int = 0,
                   limit: int = -1) -> tuple[list[dict], int]:
    rows = await db.fetchall(
        FRAME_SELECT + " WHERE f.shot_id = ? ORDER BY f.number LIMIT ? OFFSET ?",
        (shot_id, limit, offset))
    total = (await db.fetchone("SELECT COUNT(*) FROM frames WHERE shot_id = ?", (shot_id,)))[0]
    return [frame_dict(r) for r in rows], total


async def latest(db: Database) -> dict | None:
    row = await db.fetchone(
        """SELECT f.*, n.name AS node_name, s.name AS shot_name FROM frames f
           JOIN shots s ON s.id = f.shot_id LEFT JOIN nodes n ON n.id = f.node_id
           WHERE f.rendered_at IS NOT NULL AND f.thumbnail_path IS NOT NULL
           ORDER BY f.rendered_at DESC LIMIT 1""")
    return frame_dict(row) if row else None


async def missing_thumbnails(db: Database) -> list[dict]:
    """Frames recorded but never thumbnailed (the coordinator stopped in between)."""
    rows = await db.fetchall(
        """SELECT shot_id, number, path, name FROM frames
           WHERE status = 'done' AND thumbnail_path IS NULL""")
    return [dict(r) for r in rows]


async def paths_for_shot(db: Database, shot_id: int) -> list[str]:
    rows = await db.fetchall(
        "SELECT path, thumbnail_path, preview_path FROM frames WHERE shot_id = ?", (shot_id,))
    return [p for r in rows for p in r if p]
