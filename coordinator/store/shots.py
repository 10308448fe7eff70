"""SQL for shots: create, read with progress, change, delete."""
from __future__ import annotations

import json
import time
from sqlite3 import Connection
from typing import Any

from ..database import slow
from ..states import FINAL_SHOTS, JobStatus, ShotStatus, check_shot
from ..validation import ShotSpec

SUMMARY = """
SELECT s.*,
  CASE WHEN s.render_time_count > 0 THEN s.render_time_sum / s.render_time_count END
      AS avg_frame_time,
  (SELECT COUNT(*) FROM frames f WHERE f.shot_id = s.id AND f.status = 'rendering')
      AS frames_rendering,
  (SELECT COUNT(*) FROM frames f WHERE f.shot_id = s.id AND f.status = 'failed')
      AS frames_failed,
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
    _render_fields(d, with_files)
    d.pop("render_time_sum", None)
    d.pop("render_time_count", None)
    remaining = d["frames_total"] - d["frames_done"]
    avg = d["avg_frame_time"]
    running = max(1, d.pop("jobs_running") or 0)
    # ETA: frames left times the measured mean, spread over the jobs running now.
    d["eta_seconds"] = (remaining * avg / running) if avg and remaining and \
        d["status"] in ("queued", "active") else None
    return d


def _render_fields(d: dict, with_files: bool) -> None:
    """How the shot renders: the overrides asked for, what the node reported using,
    the files submitted without (up to 10,000: only with the manifest, like files);
    the top-level format and resolution of old clients."""
    d["render"] = json.loads(d["render"])
    d["settings_used"] = json.loads(d["settings_used"]) if d["settings_used"] else None
    missing = d.pop("missing")
    if with_files:
        d["missing"] = json.loads(missing)
    d["frames"] = d.pop("frames_text")
    d["output_format"] = d["render"].get("output_format")
    d["resolution_percentage"] = d["render"].get("resolution_percentage")


@slow
def create(c: Connection, spec: ShotSpec, jobs: list[list[int]]) -> int:
    now = time.time()
    cur = c.execute(
        """INSERT INTO shots (name, status, priority, blend_path, files, frame_start,
           frame_end, frame_step, chunk_size, chunk_mode, frames_text, render, missing, fps,
           submitted_by, allow_scripts, created_at, frames_total)
           VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)""",
        (spec.name, ShotStatus.QUEUED.value, spec.priority, spec.blend_path,
         json.dumps(spec.files), spec.frame_start, spec.frame_end, spec.frame_step,
         spec.chunk_size, spec.chunk_mode, spec.frames_text, json.dumps(spec.render),
         json.dumps(spec.missing), spec.fps, spec.submitted_by, int(spec.allow_scripts), now,
         sum(len(f) for f in jobs)))
    shot_id = cur.lastrowid
    assert shot_id is not None
    frame_rows = []
    for ordinal, frames in enumerate(jobs):
        cur = c.execute("INSERT INTO jobs (shot_id, ordinal, status, frames) VALUES (?,?,?,?)",
                        (shot_id, ordinal, JobStatus.QUEUED.value, json.dumps(frames)))
        frame_rows.extend((shot_id, n, cur.lastrowid, "queued") for n in frames)
    c.executemany("INSERT INTO frames (shot_id, number, job_id, status) VALUES (?,?,?,?)",
                  frame_rows)
    return shot_id


def get(c: Connection, shot_id: int, with_files: bool = False) -> dict | None:
    row = c.execute(SUMMARY + " WHERE s.id = ?", (shot_id,)).fetchone()
    return shot_dict(row, with_files) if row else None


def list_all(c: Connection, status: str | None = None) -> list[dict]:
    if status:
        rows = c.execute(SUMMARY + " WHERE s.status = ? ORDER BY s.id DESC", (status,))
    else:
        rows = c.execute(SUMMARY + " ORDER BY s.id DESC")
    return [shot_dict(r) for r in rows.fetchall()]


def status_of(c: Connection, shot_id: int) -> str | None:
    row = c.execute("SELECT status FROM shots WHERE id = ?", (shot_id,)).fetchone()
    return row["status"] if row else None


def set_status(c: Connection, shot_id: int, new: ShotStatus, reason: str | None = None) -> bool:
    """Move a shot to `new` if the transition table allows it (TransitionError if not)."""
    old = status_of(c, shot_id)
    if old is None:
        return False
    if old == new.value:
        return True
    check_shot(old, new.value)
    now = time.time()
    finished = now if new.value in FINAL_SHOTS or new is ShotStatus.FAILED else None
    c.execute(
        """UPDATE shots SET status = ?, failure_reason = ?,
           started_at = COALESCE(started_at, CASE WHEN ? = 'active' THEN ? END),
           finished_at = ? WHERE id = ?""",
        (new.value, reason, new.value, now, finished, shot_id))
    return True


def set_settings_used(c: Connection, shot_id: int, settings: dict) -> bool:
    """What the node reports it rendered with (the latest report wins)."""
    return c.execute("UPDATE shots SET settings_used = ? WHERE id = ?",
                     (json.dumps(settings), shot_id)).rowcount > 0


def set_priority(c: Connection, shot_id: int, priority: int) -> bool:
    return c.execute("UPDATE shots SET priority = ? WHERE id = ?",
                     (priority, shot_id)).rowcount > 0


def delete(c: Connection, shot_id: int) -> bool:
    return c.execute("DELETE FROM shots WHERE id = ?", (shot_id,)).rowcount > 0


def complete_if_done(c: Connection, shot_id: int) -> bool:
    """Mark the shot completed once every job is done."""
    # EXISTS stops at the first unfinished job; COUNT visited all of them per job_done.
    left = c.execute(
        """SELECT EXISTS (SELECT 1 FROM jobs WHERE shot_id = ?
           AND status IN ('queued', 'running', 'failed', 'cancelled'))""",
        (shot_id,)).fetchone()[0]
    if left or status_of(c, shot_id) in (None,) + FINAL_SHOTS:
        return False
    set_status(c, shot_id, ShotStatus.COMPLETED)
    return True
