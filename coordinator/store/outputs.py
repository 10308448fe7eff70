"""SQL for a frame's extra outputs: the fenced record of an upload, and listings."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import orjson

from .connection import Connection

from .frames import THUMBNAIL_TYPES, NotInJob, StaleAttempt

# Formats a browser shows as they are; others are shown by their preview or thumbnail.
BROWSER_FORMATS = ("PNG", "JPEG", "WEBP", "BMP")


@dataclass
class OutputUpload:
    """A received extra output, its thumbnail (if it is an image we read) made."""
    attempt_id: str
    number: int
    kind: str
    name: str
    format: str
    body: Path
    sha256: str
    size: int
    thumbnail: bytes | None
    thumbnail_ext: str | None
    preview: Path | None
    width: int | None
    height: int | None


def output_dict(row: Any) -> dict:
    d = {k: row[k] for k in ("id", "shot_id", "number", "kind", "name", "format", "size",
                             "sha256", "width", "height")}
    base = f"/files/shots/{d['shot_id']}/outputs/{d['id']}"
    d["url"] = f"{base}/file"
    d["thumbnail_url"] = f"{base}/thumbnail" if row["thumbnail_type"] else None
    d["preview_url"] = f"{base}/preview" if row["preview_path"] else \
        d["url"] if d["format"] in BROWSER_FORMATS else d["thumbnail_url"]
    return d


async def record(c: Connection, up: OutputUpload,
                 place: Callable[[int, OutputUpload], tuple[str, str | None]]
           ) -> tuple[dict, list[str]]:
    """Record an extra output under the lease fence, in one transaction.

    `place(shot_id, upload)` moves its files into place and returns their data-dir
    paths; it runs only when the attempt still holds the job. Returns the output and
    the files of the one it replaced that are not overwritten (to delete once
    committed)."""
    job = await c.fetchone(
        "SELECT shot_id, frames FROM jobs WHERE attempt_id = ? AND status = 'running'",
        (up.attempt_id,))
    if job is None:
        raise StaleAttempt()
    if up.number not in orjson.loads(job["frames"]):
        raise NotInJob()
    shot_id = job["shot_id"]
    old = await c.fetchone(
        """SELECT path, preview_path FROM frame_outputs
           WHERE shot_id = ? AND number = ? AND kind = ? AND name = ?""",
        (shot_id, up.number, up.kind, up.name))
    path, preview = place(shot_id, up)
    row = (await c.fetchall(
        """INSERT INTO frame_outputs (shot_id, number, kind, name, format, path, size, sha256,
               width, height, thumbnail, thumbnail_type, preview_path, attempt_id, created_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (shot_id, number, kind, name) DO UPDATE SET
               format = excluded.format, path = excluded.path, size = excluded.size,
               sha256 = excluded.sha256, width = excluded.width, height = excluded.height,
               thumbnail = excluded.thumbnail, thumbnail_type = excluded.thumbnail_type,
               preview_path = excluded.preview_path, attempt_id = excluded.attempt_id,
               created_at = excluded.created_at
           RETURNING *""",
        (shot_id, up.number, up.kind, up.name, up.format, path, up.size, up.sha256, up.width,
         up.height, up.thumbnail,
         THUMBNAIL_TYPES[up.thumbnail_ext] if up.thumbnail_ext else None, preview,
         up.attempt_id, time.time())))[0]
    stale = [p for p in ((old["path"], old["preview_path"]) if old else ())
             if p and p not in (path, preview)]
    return output_dict(row), stale


async def for_frame(c: Connection, shot_id: int, number: int) -> list[dict]:
    rows = await c.fetchall("SELECT * FROM frame_outputs WHERE shot_id = ? AND number = ? "
                            "ORDER BY kind DESC, name", (shot_id, number))
    return [output_dict(r) for r in rows]


async def stored(c: Connection, shot_id: int, output_id: int) -> dict | None:
    """What the file routes serve of one output: its paths and thumbnail."""
    row = await c.fetchone(
        """SELECT name, format, path, preview_path, thumbnail, thumbnail_type
           FROM frame_outputs WHERE shot_id = ? AND id = ?""", (shot_id, output_id))
    return dict(row) if row else None
