"""SQL for frames: the fenced record of an upload, and listings."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import orjson
from brender_protocol.formats import DEFAULT_FORMAT, frame_stem

from . import frame_checks
from .connection import Connection

FRAME_SELECT = """SELECT f.*, n.name AS node_name,
                  (SELECT COUNT(*) FROM frame_outputs o
                   WHERE o.shot_id = f.shot_id AND o.number = f.number) AS outputs
                  FROM frames f LEFT JOIN nodes n ON n.id = f.node_id"""


THUMBNAIL_TYPES = {"jpg": "image/jpeg", "png": "image/png"}


class StaleAttempt(Exception):
    """The upload's attempt no longer holds the job's lease."""


class NotInJob(Exception):
    pass


@dataclass
class Upload:
    """A received frame, its thumbnail and preview made, waiting to be recorded."""
    attempt_id: str
    number: int
    body: Path
    thumbnail: bytes
    thumbnail_ext: str
    preview: Path | None
    sha256: str
    size: int
    render_time: float | None
    width: int
    height: int
    output_format: str | None = None   # X-Output-Format; None: the shot's, else PNG
    checks: dict | None = None         # the frame worker's findings (frame_checks.py)


def frame_dict(row: Any) -> dict:
    d = dict(row)
    shot_id = d["shot_id"]
    done = d["status"] == "done"
    base = f"/files/shots/{shot_id}"
    d["image_url"] = f"{base}/frames/{d['name']}" if done and d.get("name") else None
    thumb = d.pop("thumbnail_path", None)
    preview = d.pop("preview_path", None)
    d["thumbnail_url"] = f"{base}/thumbnails/{thumb.rsplit('/', 1)[-1]}" if thumb else None
    d["preview_url"] = f"{base}/previews/{preview.rsplit('/', 1)[-1]}" if preview \
        else d["image_url"]
    d.pop("path", None)
    d.pop("attempt_id", None)
    return d


SHOT_COUNTS = """UPDATE shots SET frames_done = frames_done + ?,
                 render_time_sum = render_time_sum + ?, render_time_count = render_time_count + ?
                 WHERE id = ?"""


def _one_frame(render_time: float | None) -> tuple[int, float, int]:
    """One frame's counts: (frames, render seconds, frames timed)."""
    return 1, render_time or 0.0, 0 if render_time is None else 1


async def _count_frame(c: Connection, shot_id: int, render_time: float | None) -> None:
    """One more frame on the shot's counters; where the connection collects them (a
    PostgreSQL batch of records: `shot_counts`), they are added as the batch ends, so
    the shot's row is locked for its last statement only and batches run side by side."""
    counts: dict[int, tuple[int, float, int]] | None = getattr(c, "shot_counts", None)
    one = _one_frame(render_time)
    if counts is None:
        await c.execute(SHOT_COUNTS, (*one, shot_id))
        return
    had = counts.get(shot_id, (0, 0.0, 0))
    counts[shot_id] = (had[0] + one[0], had[1] + one[1], had[2] + one[2])


async def add_shot_counts(c: Connection, counts: dict[int, tuple[int, float, int]]) -> None:
    """The counters a batch of records collected (shots in id order: two batches
    never wait on each other's shots crosswise)."""
    await c.executemany(SHOT_COUNTS, [(*counts[shot_id], shot_id) for shot_id in sorted(counts)])


# `status != 'done'`: the same frame sent to two coordinators at once (a node failing
# over) is recorded by the first; the second waits for it and finds it done. Its
# delivery is queued (or cleared) here, not by a second UPDATE of the row: on a shot
# delivered to studio storage that UPDATE cost every frame a statement more.
_RECORD = """UPDATE frames SET status = 'done', name = ?, path = ?, sha256 = ?, size = ?,
             render_time = ?, width = ?, height = ?, node_id = ?, attempt_id = ?,
             rendered_at = ?, thumbnail_path = ?, preview_path = ?, delivery = ?,
             delivery_error = NULL
             WHERE shot_id = ? AND number = ? AND status != 'done' RETURNING *"""
_THUMBNAIL_CONFLICT = """ON CONFLICT (shot_id, number) DO UPDATE SET
                         media_type = excluded.media_type, data = excluded.data"""


async def record(c: Connection, up: Upload, extensions: dict[str, str],
                 place: Callable[[int, str, Upload], tuple[str, str, str | None]]) -> dict | None:
    """Record a frame under the lease fence, in one transaction.

    `place(shot_id, frame_name, upload)` moves the files into their final places and
    returns their data-dir paths; it runs only when the attempt still holds the job,
    so a fenced (stale) upload never touches a frame on disk. Returns the frame for
    the event stream, or None when the frame was already recorded.
    """
    row = await c.fetchone(
        f"""SELECT j.shot_id, j.node_id, j.frames, f.status, s.name AS shot_name,
                  s.output_template, s.rerender_suspicious,
                  {c.dialect.json_text('s.render', 'output_format')} AS output_format,
                  n.name AS node_name,
                  (SELECT COUNT(*) FROM frame_outputs o
                   WHERE o.shot_id = j.shot_id AND o.number = ?) AS outputs
           FROM jobs j JOIN shots s ON s.id = j.shot_id
           LEFT JOIN frames f ON f.shot_id = j.shot_id AND f.number = ? AND f.job_id = j.id
           LEFT JOIN nodes n ON n.id = j.node_id
           WHERE j.attempt_id = ? AND j.status = 'running'""" + c.dialect.share_lock("j"),
        (up.number, up.number, up.attempt_id))
    if row is None:
        raise StaleAttempt()
    if row["status"] is None or up.number not in orjson.loads(row["frames"]):
        raise NotInJob()
    if row["status"] == "done":
        return None
    number = up.number
    ext = extensions[up.output_format or row["output_format"] or DEFAULT_FORMAT]
    name = f"{frame_stem(number)}.{ext}"
    path, thumb, preview = place(row["shot_id"], name, up)
    params = (name, path, up.sha256, up.size, up.render_time, up.width, up.height,
              row["node_id"], up.attempt_id, time.time(), thumb, preview,
              frame_checks.delivery_of(row), row["shot_id"], number)
    media_type = THUMBNAIL_TYPES[up.thumbnail_ext]
    sizes: list[int] | None = None
    counted = False
    if c.dialect.writes_in_with:   # the frame, its thumbnail, its neighbours: one round trip
        # A record alone in its transaction counts its frame on the shot here too (a
        # batch of records adds its counts as it ends: `_count_frame`).
        counted = getattr(c, "shot_counts", None) is None
        count = f", counted AS ({SHOT_COUNTS} AND EXISTS (SELECT 1 FROM updated))" \
            if counted else ""
        updated = await c.fetchall(
            f"""WITH updated AS ({_RECORD}),
                thumb AS (INSERT INTO thumbnails (shot_id, number, media_type, data)
                          SELECT shot_id, number, CAST(? AS TEXT), CAST(? AS {c.dialect.blob})
                          FROM updated {_THUMBNAIL_CONFLICT}){count}
                SELECT updated.*, ARRAY({frame_checks.NEIGHBOUR_SIZES}) AS neighbour_sizes
                FROM updated""",
            (*params, media_type, up.thumbnail,
             *((*_one_frame(up.render_time), row["shot_id"]) if counted else ()),
             *frame_checks.neighbours_of(row["shot_id"], number)))
        if updated:
            sizes = list(updated[0]["neighbour_sizes"])
    else:
        updated = await c.fetchall(_RECORD, params)
        if updated:
            await c.execute(f"""INSERT INTO thumbnails (shot_id, number, media_type, data)
                                VALUES (?, ?, ?, ?) {_THUMBNAIL_CONFLICT}""",
                            (row["shot_id"], number, media_type, up.thumbnail))
    if not updated:
        return None
    recorded = dict(updated[0])
    recorded.pop("neighbour_sizes", None)
    # Issue 17: flagged when it looks wrong (maybe re-rendered), delivery queued.
    recorded.update(await frame_checks.judge(c, recorded, up.checks, row, sizes))
    if not counted:
        await _count_frame(c, row["shot_id"], up.render_time)
    recorded["node_name"] = row["node_name"]
    # Extra outputs come before their frame: the event counts them like the listing.
    recorded["outputs"] = row["outputs"]
    frame = frame_dict(recorded)
    frame["shot_name"] = row["shot_name"]
    return frame


async def record_told(c: Connection, up: Upload, extensions: dict[str, str],
                      place: Callable[[int, str, Upload], tuple[str, str, str | None]],
                      news: Callable[[dict], tuple[str, str] | None]) -> dict | None:
    """`record`, and its frame's `news(frame)` (channel, payload) NOTIFYed in the same
    transaction (PostgreSQL): peers hear of the frame if and only if it is recorded,
    whatever happens to this coordinator after the commit."""
    frame = await record(c, up, extensions, place)
    told = news(frame) if frame is not None else None
    if told is not None:
        batch: list[tuple[str, str]] | None = getattr(c, "news", None)
        if batch is None:
            await c.execute(NOTIFY, told)
        else:   # a batch of records: `notify_all` as it ends, one round trip for all
            batch.append(told)
    return frame


NOTIFY = "SELECT pg_notify(?, ?)"


async def notify_all(c: Connection, news: list[tuple[str, str]]) -> None:
    """The NOTIFYs a batch of records collected, in their order; like any NOTIFY, heard
    when (and only if) the transaction commits."""
    await c.executemany(NOTIFY, news)


async def get(c: Connection, shot_id: int, number: int) -> dict | None:
    row = await c.fetchone(FRAME_SELECT + " WHERE f.shot_id = ? AND f.number = ?",
                           (shot_id, number))
    return frame_dict(row) if row else None


async def for_shot(c: Connection, shot_id: int, offset: int = 0,
                   limit: int = -1) -> tuple[list[dict], int]:
    """`limit` -1: every frame from `offset` on."""
    rows = await c.fetchall(
        FRAME_SELECT + " WHERE f.shot_id = ? ORDER BY f.number LIMIT ? OFFSET ?",
        (shot_id, c.dialect.no_limit if limit < 0 else limit, offset))
    total = await c.fetchval("SELECT frames_total FROM shots WHERE id = ?", (shot_id,))
    return [frame_dict(r) for r in rows], total or 0


async def page_after(c: Connection, shot_id: int, after: int, limit: int) -> list[dict]:
    """Up to `limit` of a shot's frames numbered above `after`, in order."""
    rows = await c.fetchall(FRAME_SELECT + " WHERE f.shot_id = ? AND f.number > ? "
                            "ORDER BY f.number LIMIT ?", (shot_id, after, limit))
    return [frame_dict(r) for r in rows]


async def latest(c: Connection) -> dict | None:
    row = await c.fetchone(
        """SELECT f.*, n.name AS node_name, s.name AS shot_name FROM frames f
           JOIN shots s ON s.id = f.shot_id LEFT JOIN nodes n ON n.id = f.node_id
           WHERE f.rendered_at IS NOT NULL
           ORDER BY f.rendered_at DESC LIMIT 1""")
    return frame_dict(row) if row else None


async def thumbnail(c: Connection, shot_id: int, number: int) -> tuple[str, bytes] | None:
    """A frame's thumbnail kept in the database: (media type, bytes)."""
    row = await c.fetchone(
        "SELECT media_type, data FROM thumbnails WHERE shot_id = ? AND number = ?",
        (shot_id, number))
    return (row["media_type"], row["data"]) if row else None


async def release_for_job(c: Connection, job_id: int) -> None:
    """A job's frames being rendered go back to the queue with it."""
    await c.execute("UPDATE frames SET status = 'queued' WHERE job_id = ? "
                    "AND status = 'rendering'", (job_id,))


async def fail_for_job(c: Connection, job_id: int, reason: str | None) -> None:
    """The frames of a job that failed for good say so, and why."""
    await c.execute("""UPDATE frames SET status = 'failed', failure_reason = ?
                       WHERE job_id = ? AND status IN ('queued', 'rendering')""",
                    (reason, job_id))
