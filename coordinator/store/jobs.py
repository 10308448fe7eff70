"""SQL for jobs: atomic claim, leases, completion, failure and requeue."""
from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from ..chunking import split_for_duration
from ..database import Database
from ..states import DISPATCHABLE_SHOTS, JobStatus, ShotStatus
from . import shots as shot_sql


@dataclass
class Assignment:
    job_id: int
    attempt_id: str
    shot_id: int
    frames: list[int]
    shot: dict


def job_dict(row: Any, with_log: bool = False) -> dict:
    d = dict(row)
    d["frames"] = json.loads(d["frames"])
    d.pop("lease_expires", None)
    d.pop("ordinal", None)
    if not with_log:
        d.pop("log_tail", None)
    return d


JOB_SELECT = """SELECT j.*, n.name AS node_name FROM jobs j
                LEFT JOIN nodes n ON n.id = j.node_id"""


async def for_shot(db: Database, shot_id: int) -> list[dict]:
    rows = await db.fetchall(JOB_SELECT + " WHERE j.shot_id = ? ORDER BY j.ordinal, j.id",
                             (shot_id,))
    return [job_dict(r) for r in rows]


async def get(db: Database, job_id: int) -> dict | None:
    row = await db.fetchone(JOB_SELECT + " WHERE j.id = ?", (job_id,))
    return job_dict(row, with_log=True) if row else None


async def by_attempt(db: Database, attempt_id: str) -> dict | None:
    row = await db.fetchone(JOB_SELECT + " WHERE j.attempt_id = ?", (attempt_id,))
    return job_dict(row) if row else None


async def claim(db: Database, node_id: str, node_allows_scripts: bool, lease_seconds: float,
                blocklist_threshold: int, target_job_seconds: float,
                nodes_online: int = 1) -> Assignment | None:
    """Hand the best queued job to `node_id`: highest priority, then oldest shot.

    Runs in one write transaction, so two nodes can never claim the same job.
    Frames already rendered by an earlier attempt are left out. Adaptive chunks,
    once frame times are measured: a job that would run far longer than the
    target is cut and the rest queued; one far shorter takes in the contiguous
    jobs after it, up to the target and to a fair share of what is left.
    """
    now = time.time()
    async with db.transaction() as tx:
        shots = await (await tx.execute(
            f"""SELECT s.id, s.allow_scripts,
                   CASE WHEN s.render_time_count > 0
                        THEN s.render_time_sum / s.render_time_count END AS avg_time
                FROM shots s
                WHERE s.status IN {DISPATCHABLE_SHOTS}
                  AND EXISTS (SELECT 1 FROM jobs j WHERE j.shot_id = s.id AND j.status = 'queued')
                  AND NOT EXISTS (SELECT 1 FROM blocklist b WHERE b.shot_id = s.id
                                  AND b.node_id = ? AND b.failures >= ?)
                ORDER BY s.priority DESC, s.created_at, s.id""",
            (node_id, blocklist_threshold))).fetchall()
        for shot in shots:
            if shot["allow_scripts"] and not node_allows_scripts:
                continue
            job = await (await tx.execute(
                """SELECT id, frames FROM jobs WHERE shot_id = ? AND status = 'queued'
                   ORDER BY ordinal, id LIMIT 1""", (shot["id"],))).fetchone()
            if job is None:
                continue
            return await _assign(tx, job, shot["id"], shot["avg_time"], node_id, now,
                                 lease_seconds, target_job_seconds, nodes_online)
    return None


async def _assign(tx: Any, job: Any, shot_id: int, avg_time: float | None, node_id: str,
                  now: float, lease_seconds: float, target: float,
                  nodes_online: int) -> Assignment:
    frames = json.loads(job["frames"])
    done = {r[0] for r in await (await tx.execute(
        "SELECT number FROM frames WHERE job_id = ? AND status = 'done'",
        (job["id"],))).fetchall()}
    todo = [f for f in frames if f not in done]
    keep, rest = split_for_duration(todo, avg_time, target)
    if rest:
        ordinal = (await (await tx.execute(
            "SELECT ordinal FROM jobs WHERE id = ?", (job["id"],))).fetchone())[0]
        cur = await tx.execute(
            "INSERT INTO jobs (shot_id, ordinal, status, frames) VALUES (?,?,?,?)",
            (shot_id, ordinal, JobStatus.QUEUED.value, json.dumps(rest)))
        await tx.executemany(
            "UPDATE frames SET job_id = ? WHERE shot_id = ? AND number = ?",
            [(cur.lastrowid, shot_id, n) for n in rest])
        frames = [f for f in frames if f not in set(rest)]
    elif avg_time and len(keep) * avg_time < target / 2:
        extra = await _absorb_following(tx, job["id"], shot_id, frames, avg_time, target,
                                        nodes_online)
        frames += extra
        keep += extra
    attempt_id = uuid.uuid4().hex
    await tx.execute(
        """UPDATE jobs SET status = 'running', node_id = ?, attempt_id = ?, frames = ?,
           attempts = attempts + 1, lease_expires = ?, started_at = ?, finished_at = NULL
           WHERE id = ?""",
        (node_id, attempt_id, json.dumps(frames), now + lease_seconds, now, job["id"]))
    await tx.execute(
        "UPDATE frames SET status = 'rendering' WHERE job_id = ? AND status != 'done'",
        (job["id"],))
    await shot_sql.set_status(tx, shot_id, ShotStatus.ACTIVE)
    shot = await (await tx.execute("SELECT * FROM shots WHERE id = ?", (shot_id,))).fetchone()
    return Assignment(job["id"], attempt_id, shot_id, keep, dict(shot))


async def _absorb_following(tx: Any, job_id: int, shot_id: int, frames: list[int],
                            avg_time: float, target: float, nodes_online: int) -> list[int]:
    """Merge the queued jobs that continue `frames` into this one; returns new frames."""
    left = (await (await tx.execute(
        "SELECT frames_total - frames_done FROM shots WHERE id = ?", (shot_id,))).fetchone())[0]
    budget = min(int(target / avg_time + 1e-6), max(1, left // max(1, nodes_online))) \
        - len(frames)
    if budget <= 0 or not frames:
        return []
    following = await (await tx.execute(
        """SELECT id, frames FROM jobs WHERE shot_id = ? AND status = 'queued' AND id != ?
           AND attempts = 0 ORDER BY ordinal, id LIMIT 64""", (shot_id, job_id))).fetchall()
    step = frames[1] - frames[0] if len(frames) > 1 else None
    taken: list[int] = []
    last = frames[-1]
    for other in following:
        more = json.loads(other["frames"])
        gap = more[0] - last
        if gap <= 0 or (step is not None and gap != step) or len(taken) + len(more) > budget:
            break
        step = step or gap
        await tx.execute("DELETE FROM jobs WHERE id = ?", (other["id"],))
        taken += more
        last = more[-1]
    if taken:
        await tx.executemany("UPDATE frames SET job_id = ? WHERE shot_id = ? AND number = ?",
                             [(job_id, shot_id, n) for n in taken])
    return taken


async def extend_leases(db: Database, node_ids: list[str], lease_seconds: float) -> None:
    """Connected nodes keep their leases; one statement for the whole farm."""
    if not node_ids:
        return
    async with db.transaction() as tx:
        await tx.execute("CREATE TEMP TABLE IF NOT EXISTS live_nodes (id TEXT PRIMARY KEY)")
        await tx.execute("DELETE FROM live_nodes")
        await tx.executemany("INSERT INTO live_nodes VALUES (?)", [(n,) for n in node_ids])
        await tx.execute(
            """UPDATE jobs SET lease_expires = ? WHERE status = 'running'
               AND node_id IN (SELECT id FROM live_nodes)""",
            (time.time() + lease_seconds,))


async def running_attempt_of(db: Database, node_id: str) -> str | None:
    row = await db.fetchone(
        "SELECT attempt_id FROM jobs WHERE node_id = ? AND status = 'running'", (node_id,))
    return row["attempt_id"] if row else None


async def _running(tx: Any, attempt_id: str) -> Any:
    """The job this attempt holds, if it still holds it."""
    async with tx.execute("SELECT * FROM jobs WHERE attempt_id = ? AND status = 'running'",
                          (attempt_id,)) as cur:
        return await cur.fetchone()


async def _release_frames(tx: Any, job_id: int) -> None:
    await tx.execute(
        "UPDATE frames SET status = 'queued' WHERE job_id = ? AND status = 'rendering'",
        (job_id,))


async def finish(db: Database, attempt_id: str,
                 log_tail: str = "") -> tuple[str, dict | None]:
    """The node says the attempt is done: 'done', 'missing' (frames absent) or 'stale'."""
    async with db.transaction() as tx:
        job = await _running(tx, attempt_id)
        if job is None:
            return "stale", None
        missing = (await (await tx.execute(
            "SELECT COUNT(*) FROM frames WHERE job_id = ? AND status != 'done'",
            (job["id"],))).fetchone())[0]
        if missing:
            return "missing", dict(job)
        await tx.execute(
            """UPDATE jobs SET status = 'done', finished_at = ?, lease_expires = NULL,
               log_tail = ? WHERE id = ?""", (time.time(), log_tail or None, job["id"]))
        await shot_sql.complete_if_done(tx, job["shot_id"])
        return "done", dict(job)


async def fail(db: Database, attempt_id: str, reason: str, log_tail: str, max_attempts: int,
               blocklist_threshold: int) -> dict | None:
    """Record a failed attempt; requeue it, or fail the job and its shot at the limit."""
    async with db.transaction() as tx:
        job = await _running(tx, attempt_id)
        if job is None:
            return None
        failures = job["failures"] + 1
        final = failures >= max_attempts
        await tx.execute(
            """UPDATE jobs SET status = ?, failures = ?, failure_reason = ?, log_tail = ?,
               node_id = CASE WHEN ? THEN node_id END, attempt_id = NULL,
               lease_expires = NULL, finished_at = ? WHERE id = ?""",
            ("failed" if final else "queued", failures, reason, log_tail, final,
             time.time(), job["id"]))
        await _release_frames(tx, job["id"])
        if job["node_id"]:
            await tx.execute(
                """INSERT INTO blocklist (shot_id, node_id, failures) VALUES (?, ?, 1)
                   ON CONFLICT (shot_id, node_id) DO UPDATE SET failures = failures + 1""",
                (job["shot_id"], job["node_id"]))
        if final:
            await shot_sql.set_status(
                tx, job["shot_id"], ShotStatus.FAILED,
                f"job {job['id']} failed {failures} times; last: {reason}")
        return dict(job)


async def requeue(db: Database, attempt_id: str) -> dict | None:
    """Put a running attempt back in the queue (node gone or handing back)."""
    async with db.transaction() as tx:
        job = await _running(tx, attempt_id)
        if job is None:
            return None
        await tx.execute(
            """UPDATE jobs SET status = 'queued', node_id = NULL, attempt_id = NULL,
               lease_expires = NULL WHERE id = ?""", (job["id"],))
        await _release_frames(tx, job["id"])
        return dict(job)


async def expired_attempts(db: Database, now: float) -> list[str]:
    rows = await db.fetchall(
        "SELECT attempt_id FROM jobs WHERE status = 'running' AND lease_expires < ?", (now,))
    return [r["attempt_id"] for r in rows]


async def renew_all_leases(db: Database, lease_seconds: float) -> None:
    """After a coordinator restart, give every running job's node time to reconnect."""
    async with db.transaction() as tx:
        await tx.execute("UPDATE jobs SET lease_expires = ? WHERE status = 'running'",
                         (time.time() + lease_seconds,))


async def running_attempts_of_shot(db: Database, shot_id: int) -> list[dict]:
    rows = await db.fetchall(
        "SELECT id, attempt_id, node_id FROM jobs WHERE shot_id = ? AND status = 'running'",
        (shot_id,))
    return [dict(r) for r in rows]


async def cancel_shot(db: Database, shot_id: int) -> bool:
    async with db.transaction() as tx:
        ok = await shot_sql.set_status(tx, shot_id, ShotStatus.CANCELLED)
        await tx.execute(
            """UPDATE jobs SET status = 'cancelled', attempt_id = NULL, lease_expires = NULL
               WHERE shot_id = ? AND status IN ('queued', 'running', 'failed')""", (shot_id,))
        await tx.execute(
            "UPDATE frames SET status = 'queued' WHERE shot_id = ? AND status = 'rendering'",
            (shot_id,))
        return ok


async def requeue_failed(db: Database, shot_id: int) -> int:
    async with db.transaction() as tx:
        cur = await tx.execute(
            """UPDATE jobs SET status = 'queued', failures = 0, node_id = NULL
               WHERE shot_id = ? AND status = 'failed'""", (shot_id,))
        await tx.execute("DELETE FROM blocklist WHERE shot_id = ?", (shot_id,))
        async with tx.execute("SELECT status FROM shots WHERE id = ?", (shot_id,)) as c:
            row = await c.fetchone()
        if row and row["status"] == "failed":
            await shot_sql.set_status(tx, shot_id, ShotStatus.ACTIVE)
        return cur.rowcount


async def set_paused(db: Database, shot_id: int, paused: bool) -> bool:
    async with db.transaction() as tx:
        target = ShotStatus.PAUSED if paused else ShotStatus.QUEUED
        if not paused:
            async with tx.execute("SELECT started_at FROM shots WHERE id = ?", (shot_id,)) as c:
                row = await c.fetchone()
            if row and row["started_at"]:
                target = ShotStatus.ACTIVE
        return await shot_sql.set_status(tx, shot_id, target)


async def frames_queued(db: Database) -> int:
    row = await db.fetchone(
        f"""SELECT COALESCE(SUM(frames_total - frames_done), 0) FROM shots
            WHERE status IN {DISPATCHABLE_SHOTS + ('paused',)}""")
    return row[0]
