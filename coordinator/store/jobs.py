"""SQL for jobs: leases, completion, failure and requeue (claims: claims.py).

Every function takes a `Connection`; `Database.write` wraps the mutating ones in
one transaction, so each runs whole or not at all. The operations on a whole shot
live in shots.py; their names stay importable here, where callers use them.
"""
from __future__ import annotations

import time
from typing import Any

import orjson

from ..states import DISPATCHABLE_SHOTS, ShotStatus
from . import frames as frame_sql
from . import shots as shot_sql
from .connection import Connection, Row
from .shots import (cancel_shot, delete_shot, fail_unrenderable,  # noqa: F401 (callers' names)
                    requeue_failed, set_paused)


def job_dict(row: Any, with_log: bool = False) -> dict:
    d = dict(row)
    d["frames"] = orjson.loads(d["frames"])
    d.pop("lease_expires", None)
    d.pop("ordinal", None)
    if not with_log:
        d.pop("log_tail", None)
    return d


JOB_SELECT = """SELECT j.*, n.name AS node_name FROM jobs j
                LEFT JOIN nodes n ON n.id = j.node_id"""


async def for_shot(c: Connection, shot_id: int) -> list[dict]:
    rows = await c.fetchall(JOB_SELECT + " WHERE j.shot_id = ? ORDER BY j.ordinal, j.id",
                            (shot_id,))
    return [job_dict(r) for r in rows]


async def page_after(c: Connection, shot_id: int, after: tuple[int, int],
                     limit: int) -> list[dict]:
    """Up to `limit` of a shot's jobs after `(ordinal, id)`, in `for_shot`'s order;
    each carries its `ordinal` for the next page's `after`."""
    rows = await c.fetchall(JOB_SELECT + " WHERE j.shot_id = ? AND (j.ordinal, j.id) > (?, ?) "
                            "ORDER BY j.ordinal, j.id LIMIT ?", (shot_id, *after, limit))
    return [{**job_dict(r), "ordinal": r["ordinal"]} for r in rows]


async def get(c: Connection, job_id: int, with_log: bool = True) -> dict | None:
    row = await c.fetchone(JOB_SELECT + " WHERE j.id = ?", (job_id,))
    return job_dict(row, with_log) if row else None


async def by_attempt(c: Connection, attempt_id: str) -> dict | None:
    row = await c.fetchone(JOB_SELECT + " WHERE j.attempt_id = ?", (attempt_id,))
    return job_dict(row) if row else None


async def leases_due(c: Connection, before: float) -> list[tuple[str, str | None, float]]:
    """Running attempts whose lease ends before `before`: (attempt, node, lease end)."""
    rows = await c.fetchall("""SELECT attempt_id, node_id, lease_expires FROM jobs
                               WHERE status = 'running' AND lease_expires < ?""", (before,))
    return [(r["attempt_id"], r["node_id"], r["lease_expires"]) for r in rows]


async def renew_leases(c: Connection, attempt_ids: list[str], lease_seconds: float) -> None:
    until = time.time() + lease_seconds
    await c.executemany(
        "UPDATE jobs SET lease_expires = ? WHERE attempt_id = ? AND status = 'running'",
        [(until, a) for a in attempt_ids])


async def running_attempt_of(c: Connection, node_id: str) -> str | None:
    attempt: str | None = await c.fetchval(
        "SELECT attempt_id FROM jobs WHERE node_id = ? AND status = 'running'", (node_id,))
    return attempt


async def _node_name(c: Connection, node_id: str | None) -> str | None:
    # Apart, not a subquery of RETURNING: SQLite scans every node for one there.
    if node_id is None:
        return None
    name: str | None = await c.fetchval("SELECT name FROM nodes WHERE id = ?", (node_id,))
    return name


async def _running(c: Connection, attempt_id: str) -> Row | None:
    """The job this attempt holds, if it still holds it."""
    return await c.fetchone(JOB_SELECT + " WHERE j.attempt_id = ? AND j.status = 'running'",
                            (attempt_id,))


# The attempt done, if every frame of its job is: `finish_params`.
# `{gate}`: a further condition, its parameters after finish_params'.
_FINISH = """UPDATE jobs SET status = 'done', finished_at = ?, lease_expires = NULL, log_tail = ?
             WHERE attempt_id = ? AND status = 'running'
               AND NOT EXISTS (SELECT 1 FROM frames f WHERE f.job_id = jobs.id
                               AND f.status != 'done'){gate}
             RETURNING *"""
FINISH = _FINISH.format(gate="")


def finish_gated(gate: str) -> str:
    """FINISH, done only where `gate` (SQL: " AND ...") holds too."""
    return _FINISH.format(gate=gate)


def finish_params(attempt_id: str, log_tail: str = "") -> tuple:
    return (time.time(), log_tail or None, attempt_id)


async def finish(c: Connection, attempt_id: str, log_tail: str = "") -> tuple[str, dict | None]:
    """The node says the attempt is done: 'done', 'missing' (frames absent) or 'stale'."""
    # One statement on the path every job takes; the other two outcomes look again.
    row = await c.fetchall(FINISH + c.dialect.returning_job_extras,
                           finish_params(attempt_id, log_tail))
    if not row:
        job = await _running(c, attempt_id)
        return ("stale", None) if job is None else ("missing", dict(job))
    return await settle_done(c, row[0])


async def settle_done(c: Connection, row: Any) -> tuple[str, dict]:
    """FINISH's row as `finish` returns it; completes the shot of its last job."""
    done = job_dict(row)
    if "node_name" not in done:
        done["node_name"] = await _node_name(c, done["node_id"])
    if not done.pop("others_left", False):   # (always asked on SQLite)
        await shot_sql.complete_if_done(c, done["shot_id"])
    return "done", done


async def fail(c: Connection, attempt_id: str, reason: str, log_tail: str, max_attempts: int,
               blocklist_threshold: int) -> dict | None:
    """Record a failed attempt; requeue it, or fail the job and its shot at the limit."""
    job = await _running(c, attempt_id)
    if job is None:
        return None
    failures = job["failures"] + 1
    final = failures >= max_attempts
    await c.execute(
        """UPDATE jobs SET status = ?, failures = ?, failure_reason = ?, log_tail = ?,
           node_id = CASE WHEN ? THEN node_id END, attempt_id = NULL,
           lease_expires = NULL, finished_at = ? WHERE id = ?""",
        ("failed" if final else "queued", failures, reason, log_tail, final,
         time.time(), job["id"]))
    if final:
        await frame_sql.fail_for_job(c, job["id"], reason)
    else:
        await frame_sql.release_for_job(c, job["id"])
    if job["node_id"]:
        await c.execute(
            """INSERT INTO blocklist (shot_id, node_id, failures) VALUES (?, ?, 1)
               ON CONFLICT (shot_id, node_id) DO UPDATE SET failures = blocklist.failures + 1""",
            (job["shot_id"], job["node_id"]))
    if final:
        await shot_sql.set_status(c, job["shot_id"], ShotStatus.FAILED,
                            f"{reason} (job {job['id']} failed {failures} times)")
    return dict(job)


async def fail_for_good(c: Connection, attempt_id: str, reason: str) -> dict | None:
    """A job that no node can be given fails at once, and its shot with it."""
    job = await _running(c, attempt_id)
    if job is None:
        return None
    await c.execute("""UPDATE jobs SET status = 'failed', failures = failures + 1,
                 failure_reason = ?, attempt_id = NULL, lease_expires = NULL,
                 finished_at = ? WHERE id = ?""", (reason, time.time(), job["id"]))
    await frame_sql.release_for_job(c, job["id"])
    await shot_sql.set_status(c, job["shot_id"], ShotStatus.FAILED,
                              f"job {job['id']}: {reason}")
    return dict(job)


async def requeue(c: Connection, attempt_id: str) -> dict | None:
    """Put a running attempt back in the queue (node gone or handing back)."""
    job = await _running(c, attempt_id)
    if job is None:
        return None
    await c.execute("""UPDATE jobs SET status = 'queued', node_id = NULL, attempt_id = NULL,
                       lease_expires = NULL WHERE id = ?""", (job["id"],))
    await frame_sql.release_for_job(c, job["id"])
    return dict(job)


async def renew_all_leases(c: Connection, lease_seconds: float) -> None:
    """After a coordinator restart, give every running job's node time to reconnect."""
    await c.execute("UPDATE jobs SET lease_expires = ? WHERE status = 'running'",
                    (time.time() + lease_seconds,))


async def blocked_nodes(c: Connection, shot_id: int, threshold: int) -> set[str]:
    rows = await c.fetchall("SELECT node_id FROM blocklist WHERE shot_id = ? AND failures >= ?",
                            (shot_id, threshold))
    return {r["node_id"] for r in rows}


async def frames_queued(c: Connection) -> int:
    queued: int = await c.fetchval(
        f"""SELECT COALESCE(SUM(frames_total - frames_done), 0) FROM shots
            WHERE status IN {DISPATCHABLE_SHOTS + ('paused',)}""")
    return queued
