"""SQL for shots: create, read with progress, change, and the operations on a whole
shot (pause, cancel, retry, delete, fail)."""
from __future__ import annotations

import json
import time
from typing import Any

from ..states import DISPATCHABLE_SHOTS, FINAL_SHOTS, JobStatus, ShotStatus, check_shot
from ..validation import ShotSpec
from . import frames as frame_sql
from .connection import Connection, slow

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
    if "rerender_suspicious" in d:
        d["rerender_suspicious"] = bool(d["rerender_suspicious"])
    _render_fields(d, with_files)
    d.pop("render_time_sum", None)
    d.pop("render_time_count", None)
    remaining = d["frames_total"] - d["frames_done"]
    avg = d["avg_frame_time"]
    d["nodes_rendering"] = d.pop("jobs_running") or 0
    running = max(1, d["nodes_rendering"])
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
    needs = json.loads(d.pop("requirements") or "{}")
    d.update(requires_tags=needs.get("requires_tags", []),
             prefers_tags=needs.get("prefers_tags", []), device=needs.get("device"),
             blender=needs.get("blender"), blender_saved_with=needs.get("blender_saved_with"))
    d["output_format"] = d["render"].get("output_format")
    d["resolution_percentage"] = d["render"].get("resolution_percentage")


ANALYZE_AFTER_JOBS = 1000


@slow
async def create(c: Connection, spec: ShotSpec, jobs: list[list[int]]) -> int:
    now = time.time()
    shot_id: int = await c.fetchval(
        """INSERT INTO shots (name, status, priority, blend_path, files, frame_start,
           frame_end, frame_step, chunk_size, chunk_mode, frames_text, render, missing, fps,
           submitted_by, allow_scripts, created_at, frames_total, requirements, max_nodes)
           VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) RETURNING id""",
        (spec.name, ShotStatus.QUEUED.value, spec.priority, spec.blend_path,
         json.dumps(spec.files), spec.frame_start, spec.frame_end, spec.frame_step,
         spec.chunk_size, spec.chunk_mode, spec.frames_text, json.dumps(spec.render),
         json.dumps(spec.missing), spec.fps, spec.submitted_by, int(spec.allow_scripts), now,
         sum(len(f) for f in jobs), json.dumps(spec.requirements), spec.max_nodes))
    assert shot_id is not None
    if spec.output_template or spec.rerender_suspicious:   # issue 17
        await c.execute("UPDATE shots SET output_template = ?, output_root = ?, "
                        "rerender_suspicious = ? WHERE id = ?",
                        (spec.output_template, spec.output_root,
                         int(spec.rerender_suspicious), shot_id))
    await c.executemany(
        "INSERT INTO jobs (shot_id, ordinal, status, frames) VALUES (?,?,?,?)",
        [(shot_id, ordinal, JobStatus.QUEUED.value, json.dumps(frames))
         for ordinal, frames in enumerate(jobs)])
    # One query for every new job's id: a RETURNING per job cost half again as much.
    ids = await c.fetchall("SELECT id FROM jobs WHERE shot_id = ? ORDER BY ordinal",
                           (shot_id,))
    frame_rows = [(shot_id, n, row["id"], "queued") for row, frames in zip(ids, jobs)
                  for n in frames]
    await c.executemany("INSERT INTO frames (shot_id, number, job_id, status) VALUES (?,?,?,?)",
                        frame_rows)
    if c.dialect.analyze_new_jobs and len(jobs) >= ANALYZE_AFTER_JOBS:
        # PostgreSQL keeps a cached plan of a claim batch's first question
        # (claims.ANY_BLOCKLIST): made on an empty farm, it read every job of a big
        # new shot on each claim batch (1 ms) until autovacuum's ANALYZE, a minute or
        # more later. Analyzing one column (a few ms, a sample) replans it on the
        # index. Only that column: statistics of `status` taken now (every job queued,
        # none running) sent finishing jobs down the wrong index.
        await c.execute(c.dialect.analyze_new_jobs)
    return shot_id


async def get(c: Connection, shot_id: int, with_files: bool = False) -> dict | None:
    row = await c.fetchone(SUMMARY + " WHERE s.id = ?", (shot_id,))
    return shot_dict(row, with_files) if row else None


async def list_all(c: Connection, status: str | None = None) -> list[dict]:
    if status:
        rows = await c.fetchall(SUMMARY + " WHERE s.status = ? ORDER BY s.id DESC", (status,))
    else:
        rows = await c.fetchall(SUMMARY + " ORDER BY s.id DESC")
    return [shot_dict(r) for r in rows]


async def status_of(c: Connection, shot_id: int) -> str | None:
    status: str | None = await c.fetchval("SELECT status FROM shots WHERE id = ?", (shot_id,))
    return status


async def set_status(c: Connection, shot_id: int, new: ShotStatus,
                     reason: str | None = None) -> bool:
    """Move a shot to `new` if the transition table allows it (TransitionError if not)."""
    # Locked until the transaction ends: no other coordinator moves it meanwhile.
    old = await c.fetchval("SELECT status FROM shots WHERE id = ?" + c.dialect.for_update,
                           (shot_id,))
    if old is None:
        return False
    if old == new.value:
        return True
    check_shot(old, new.value)
    now = time.time()
    finished = now if new.value in FINAL_SHOTS or new is ShotStatus.FAILED else None
    started = now if new is ShotStatus.ACTIVE else None
    await c.execute(
        """UPDATE shots SET status = ?, failure_reason = ?,
           started_at = COALESCE(started_at, ?), finished_at = ? WHERE id = ?""",
        (new.value, reason, started, finished, shot_id))
    return True


async def set_settings_used(c: Connection, shot_id: int, settings: dict) -> bool:
    """What the node reports it rendered with (the latest report wins). The farm, not
    the file, picks the frames, so the frame step used is the shot's own."""
    step = await c.fetchval("SELECT frame_step FROM shots WHERE id = ?", (shot_id,))
    if step is None:
        return False
    settings = dict(settings, frame_step=step) if "frame_step" in settings else settings
    return await c.execute("UPDATE shots SET settings_used = ? WHERE id = ?",
                           (json.dumps(settings), shot_id)) > 0


async def set_priority(c: Connection, shot_id: int, priority: int) -> bool:
    return await c.execute("UPDATE shots SET priority = ? WHERE id = ?",
                           (priority, shot_id)) > 0


async def change(c: Connection, shot_id: int, changes: dict) -> bool:
    """Set what `validation.shot_changes` allows (priority, max_nodes)."""
    columns = [k for k in ("priority", "max_nodes") if k in changes]
    return await c.execute(
        f"UPDATE shots SET {', '.join(f'{k} = ?' for k in columns)} WHERE id = ?",
        tuple(changes[k] for k in columns) + (shot_id,)) > 0


async def waiting_candidates(c: Connection) -> list[dict]:
    """The shots with queued work, what they ask and how many nodes render each: the
    inputs of their waiting reasons."""
    rows = await c.fetchall(
        f"""SELECT s.id, s.requirements, s.allow_scripts, s.max_nodes,
               (SELECT COUNT(*) FROM jobs j WHERE j.shot_id = s.id AND j.status = 'running')
                   AS rendering
            FROM shots s WHERE s.status IN {DISPATCHABLE_SHOTS}
              AND EXISTS (SELECT 1 FROM jobs j WHERE j.status = 'queued'
                          AND j.shot_id = s.id)""")
    return [dict(r) for r in rows]


async def delete(c: Connection, shot_id: int) -> bool:
    return await c.execute("DELETE FROM shots WHERE id = ?", (shot_id,)) > 0


async def complete_if_done(c: Connection, shot_id: int) -> bool:
    """Mark the shot completed once every job is done."""
    # EXISTS stops at the first unfinished job; COUNT visited all of them per job_done.
    left = await c.fetchval(
        """SELECT EXISTS (SELECT 1 FROM jobs WHERE shot_id = ?
           AND status IN ('queued', 'running', 'failed', 'cancelled'))""",
        (shot_id,))
    if left or await status_of(c, shot_id) in (None,) + FINAL_SHOTS:
        return False
    await set_status(c, shot_id, ShotStatus.COMPLETED)
    return True


async def running_attempts(c: Connection, shot_id: int) -> list[dict]:
    rows = await c.fetchall("""SELECT id, attempt_id, node_id FROM jobs
                               WHERE status = 'running' AND shot_id = ?""", (shot_id,))
    return [dict(r) for r in rows]


@slow
async def cancel_shot(c: Connection, shot_id: int) -> list[dict]:
    """Cancel the shot's jobs; returns the attempts that were running (their nodes stop)."""
    running = await running_attempts(c, shot_id)
    await set_status(c, shot_id, ShotStatus.CANCELLED)
    await c.execute("""UPDATE jobs SET status = 'cancelled', attempt_id = NULL,
                       lease_expires = NULL
                       WHERE shot_id = ? AND status IN ('queued', 'running', 'failed')""",
                    (shot_id,))
    await c.execute("UPDATE frames SET status = 'queued' WHERE shot_id = ? "
                    "AND status = 'rendering'", (shot_id,))
    return running


@slow
async def delete_shot(c: Connection, shot_id: int) -> list[dict]:
    """Delete the shot with its jobs and frames; returns the attempts that were running."""
    running = await running_attempts(c, shot_id)
    await delete(c, shot_id)
    return running


@slow
async def requeue_failed(c: Connection, shot_id: int) -> int:
    count = await c.execute("""UPDATE jobs SET status = 'queued', failures = 0, node_id = NULL
                               WHERE shot_id = ? AND status = 'failed'""", (shot_id,))
    await c.execute("""UPDATE frames SET status = 'queued', failure_reason = NULL
                       WHERE shot_id = ? AND status = 'failed'""", (shot_id,))
    await c.execute("DELETE FROM blocklist WHERE shot_id = ?", (shot_id,))
    if await status_of(c, shot_id) == "failed":
        await set_status(c, shot_id, ShotStatus.ACTIVE)
    return count


async def set_paused(c: Connection, shot_id: int, paused: bool) -> bool:
    target = ShotStatus.PAUSED if paused else ShotStatus.QUEUED
    if not paused and await c.fetchval("SELECT started_at FROM shots WHERE id = ?",
                                       (shot_id,)):
        target = ShotStatus.ACTIVE
    return await set_status(c, shot_id, target)


async def fail_unrenderable(c: Connection, shot_id: int, reason: str) -> None:
    """Every usable node failed this shot: fail it, and its failing jobs with it."""
    if await status_of(c, shot_id) not in DISPATCHABLE_SHOTS:
        return
    last = await c.fetchval("""SELECT failure_reason FROM jobs WHERE shot_id = ?
                               AND failure_reason IS NOT NULL
                               ORDER BY finished_at DESC LIMIT 1""", (shot_id,))
    await set_status(c, shot_id, ShotStatus.FAILED, f"{last or 'unknown error'} ({reason})")
    failing = await c.fetchall("""UPDATE jobs SET status = 'failed' WHERE shot_id = ?
                                  AND status = 'queued' AND failures > 0
                                  RETURNING id, failure_reason""", (shot_id,))
    for job in failing:
        await frame_sql.fail_for_job(c, job["id"], job["failure_reason"])


async def active_count(c: Connection) -> int:
    """Shots that still have frames to render (queued or active): the farm summary's."""
    count: int = await c.fetchval(
        "SELECT COUNT(*) FROM shots WHERE status IN ('queued', 'active')")
    return count
