"""SQL for shots: create, read with progress, change, delete."""
from __future__ import annotations

import json
import time
from typing import Any

from ..database import Database
from ..states import FINAL_SHOTS, JobStatus, ShotStatus, check_shot
from ..validation import ShotSpec

SUMMARY = """
SELECT s.*,
  CASE WHEN s.render_time_count > 0 THEN s.render_time_sum / s.render_time_count END
      AS avg_frame_time,
  (SELECT COUNT(*) FROM frames f WHERE f.shot_id = s.id AND f.status = 'rendering')
      AS frames_rendering,
  (SELECT COUNT(*) FROM jobs j WHERE j.shot_id = s.id) AS jobs_total,
  (SELECT COUNT(*) FROM jobs j WHERE j.shot_id = s.id AND j.status = 'done') AS jobs_done,
  (SELECT COUNT(*) FROM jobs j WHERE j.shot_id = s.id AND j.status = 'failed') AS jobs_failed,
  (SELECT COUNT(*) FROM jobs j WHERE j.shot_id = s.id AND j.status = 'running') AS jobs_running
FROM shots s
"""


def shot_dict(row: Any, with_files: bool = False) -> dict:
    d = dict(row)
    files = json.loads(d.pop("files"))
    if with_files:
        d["files"] = files
    d["allow_scripts"] = bool(d["allow_scripts"])
    d.pop("render_time_sum", None)
    d.pop("render_time_count", None)
    remaining = d["frames_total"] - d["frames_done"]
    avg = d["avg_frame_time"]
    running = max(1, d.pop("jobs_running") or 0)
    # ETA: frames left times the measured mean, spread over the jobs running now.
    d["eta_seconds"] = (remaining * avg / running) if avg and remaining and \
        d["status"] in ("queued", "active") else None
    return d


async def create(db: Database, spec: ShotSpec, jobs: list[list[int]]) -> int:
    now = time.time()
    async with db.transaction() as tx:
        cur = await tx.execute(
            """INSERT INTO shots (name, status, priority, blend_path, files, frame_start,
               frame_end, frame_step, chunk_size, output_format, resolution_percentage, fps,
               submitted_by, allow_scripts, created_at, frames_total)
               VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)""",
            (spec.name, ShotStatus.QUEUED.value, spec.priority, spec.blend_path,
             json.dumps(spec.files), spec.frame_start, spec.frame_end, spec.frame_step,
             spec.chunk_size, spec.output_format, spec.resolution_percentage, spec.fps,
             spec.submitted_by, int(spec.allow_scripts), now,
             sum(len(frames) for frames in jobs)))
        shot_id = cur.lastrowid
        frame_rows = []
        for ordinal, frames in enumerate(jobs):
            cur = await tx.execute(
                "INSERT INTO jobs (shot_id, ordinal, status, frames) VALUES (?,?,?,?)",
                (shot_id, ordinal, JobStatus.QUEUED.value, json.dumps(frames)))
            frame_rows.extend((shot_id, n, cur.lastrowid, "queued") for n in frames)
        await tx.executemany(
            "INSERT INTO frames (shot_id, number, job_id, status) VALUES (?,?,?,?)",
            frame_rows)
    assert shot_id is not None
    return shot_id


async def get(db: Database, shot_id: int, with_files: bool = False) -> dict | None:
    row = await db.fetchone(SUMMARY + " WHERE s.id = ?", (shot_id,))
    return shot_dict(row, with_files) if row else None


async def list_all(db: Database, status: str | None = None) -> list[dict]:
    if status:
        rows = await db.fetchall(SUMMARY + " WHERE s.status = ? ORDER BY s.id DESC", (status,))
    else:
        rows = await db.fetchall(SUMMARY + " ORDER BY s.id DESC")
    return [shot_dict(r) for r in rows]


async def status_of(db: Database, shot_id: int) -> str | None:
    row = await db.fetchone("SELECT status FROM shots WHERE id = ?", (shot_id,))
    return row["status"] if row else None


async def set_status(tx: Any, shot_id: int, new: ShotStatus, reason: str | None = None) -> bool:
    """Move a shot to `new` if the transition table allows it; False if not."""
    async with tx.execute("SELECT status FROM shots WHERE id = ?", (shot_id,)) as cur:
        row = await cur.fetchone()
    if row is None:
        return False
    old = row["status"]
    if old == new.value:
        return True
    check_shot(old, new.value)
    now = time.time()
    finished = now if new.value in FINAL_SHOTS or new is ShotStatus.FAILED else None
    await tx.execute(
        """UPDATE shots SET status = ?, failure_reason = ?,
           started_at = COALESCE(started_at, CASE WHEN ? = 'active' THEN ? END),
           finished_at = ? WHERE id = ?""",
        (new.value, reason, new.value, now, finished, shot_id))
    return True


async def set_priority(db: Database, shot_id: int, priority: int) -> bool:
    async with db.transaction() as tx:
        cur = await tx.execute("UPDATE shots SET priority = ? WHERE id = ?", (priority, shot_id))
        return cur.rowcount > 0


async def delete(db: Database, shot_id: int) -> bool:
    async with db.transaction() as tx:
        cur = await tx.execute("DELETE FROM shots WHERE id = ?", (shot_id,))
        return cur.rowcount > 0


async def complete_if_done(tx: Any, shot_id: int) -> bool:
    """Mark the shot completed once every job is done."""
    async with tx.execute(
            """SELECT COUNT(*) FROM jobs WHERE shot_id = ?
               AND status IN ('queued', 'running', 'failed', 'cancelled')""",
            (shot_id,)) as cur:
        left = (await cur.fetchone())[0]
    if left:
        return False
    async with tx.execute("SELECT status FROM shots WHERE id = ?", (shot_id,)) as cur:
        row = await cur.fetchone()
    if row is None or row["status"] in FINAL_SHOTS:
        return False
    await set_status(tx, shot_id, ShotStatus.COMPLETED)
    return True


async def blob_in_use(db: Database, sha: str) -> bool:
    row = await db.fetchone("SELECT 1 FROM shots WHERE files LIKE ? LIMIT 1", (f"%{sha}%",))
    return row is not None
