"""SQL for jobs: atomic claim, leases, completion, failure and requeue.

Every function takes a `Connection`; `Database.write` wraps the mutating ones in
one transaction, so each runs whole or not at all. The operations on a whole shot
live in shots.py; their names stay importable here, where callers use them.
"""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import orjson

from .. import matching
from ..chunking import split_for_duration
from ..matching import Offer
from ..states import DISPATCHABLE_SHOTS, JobStatus, ShotStatus
from . import frames as frame_sql
from . import shots as shot_sql
from .connection import Connection, Row
from .shots import (cancel_shot, delete_shot, fail_unrenderable,  # noqa: F401 (callers' names)
                    requeue_failed, set_paused)


@dataclass
class Assignment:
    job: dict
    attempt_id: str
    frames: list[int]
    shot: dict
    blender_version: str | None = None  # which of the node's Blenders (None: its first)
    device: str | None = None           # the shot's device (None: the file's setting)


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


async def claim(c: Connection, node_id: str, offer: Offer, lease_seconds: float,
                blocklist_threshold: int, target_job_seconds: float, nodes_online: int = 1,
                farm: frozenset[tuple[int, ...]] = frozenset(),
                rendering: dict[int, int] | None = None) -> Assignment | None:
    """Hand `node_id` the best queued job it can render (docs/scheduling.md).

    Of the shots whose needs the node's `offer` meets (matching.py; `farm`: the
    Blender series connected nodes have) and that are below their `max_nodes`: the
    highest priority; among equals, the one preferring most of its tags, then the one
    fewest nodes render now (so shots of one priority share the farm), then the oldest.
    One transaction, so two nodes can never claim the same job. Frames already
    rendered by an earlier attempt are left out. Adaptive chunks, once frame times
    are measured: a job that would run far longer than the target is cut and the
    rest queued; one far shorter takes in the contiguous jobs after it, up to the
    target and to a fair share of what is left.

    How many nodes render a shot is counted only when it decides (a cap, or a tie
    with another shot): counting walks the shot's running jobs, thousands on a big
    farm, and the claims of one transaction share the counts in `rendering`.
    """
    shots = await c.fetchall(
        f"""SELECT s.*,
               CASE WHEN s.render_time_count > 0
                    THEN s.render_time_sum / s.render_time_count END AS avg_time
            FROM shots s
            WHERE s.status IN {DISPATCHABLE_SHOTS}
              AND EXISTS (SELECT 1 FROM jobs j WHERE j.status = 'queued' AND j.shot_id = s.id)
              AND NOT EXISTS (SELECT 1 FROM blocklist b WHERE b.shot_id = s.id
                              AND b.node_id = ? AND b.failures >= ?)
            ORDER BY s.priority DESC, s.created_at, s.id""",
        (node_id, blocklist_threshold))
    counts = {} if rendering is None else rendering

    async def rendering_of(shot_id: int, capped: bool = False) -> int:
        if shot_id not in counts:
            if capped and c.dialect.for_update:
                # Claims on other coordinators count this shot too: the first to lock it
                # counts and claims; the next counts after that one commits (its cap holds).
                await c.execute("SELECT id FROM shots WHERE id = ?" + c.dialect.for_update,
                                (shot_id,))
            counts[shot_id] = await c.fetchval(
                "SELECT COUNT(*) FROM jobs WHERE status = 'running' AND shot_id = ?",
                (shot_id,))
        return counts[shot_id]

    # Shots the node can render, grouped by (priority, preference), best group first.
    groups: dict[tuple[int, int], list[tuple[int, Row, str, str | None]]] = {}
    for place, shot in enumerate(shots):
        needs = matching.needs_of(shot)
        version = matching.blender_for(needs, offer, farm)
        if version is not None:
            groups.setdefault((-shot["priority"], -needs.preference(offer)), []).append(
                (place, shot, version, needs.device))
    for key in sorted(groups):
        open_to_it = [entry for entry in groups[key] if entry[1]["max_nodes"] is None
                      or await rendering_of(entry[1]["id"], True) < entry[1]["max_nodes"]]
        if len(open_to_it) > 1:   # fair share: the fewest nodes first, then the oldest
            order = [(await rendering_of(e[1]["id"]), e[0], e) for e in open_to_it]
            open_to_it = [e for *_, e in sorted(order, key=lambda o: o[:2])]
        for _, shot, version, device in open_to_it:
            # Another coordinator's claim may hold a queued job: take the next one.
            job = await c.fetchone(
                """SELECT id, frames, ordinal, attempts FROM jobs
                   WHERE status = 'queued' AND shot_id = ?
                     AND (avoid_node IS NULL OR avoid_node != ? OR ? < 2)
                   ORDER BY ordinal, id LIMIT 1""" + c.dialect.skip_locked,
                (shot["id"], node_id, nodes_online))
            if job is not None:
                assignment = await _assign(c, job, shot, node_id, lease_seconds,
                                           target_job_seconds, nodes_online)
                assignment.blender_version, assignment.device = version or None, device
                if shot["id"] in counts:
                    counts[shot["id"]] += 1
                return assignment
    return None


async def claim_many(c: Connection, nodes: list[tuple[str, Offer]], lease_seconds: float,
                     blocklist_threshold: int, target_job_seconds: float,
                     nodes_online: int, farm: frozenset[tuple[int, ...]] = frozenset(),
                     exhausted: set[Offer] | None = None,
                     rendering: dict[int, int] | None = None,
                     blocklists: bool | None = None) -> list[Assignment | None]:
    """`claim` for each idle node of a dispatch round, in one transaction.

    `exhausted` collects the offers that found nothing: while no node is blocklisted
    from any shot, another node offering the same finds nothing either (claims only
    take work away), so it is not asked again (the caller keeps the set for a round).
    `rendering` and `blocklists`: what `claim_batch` shares between its claims."""
    exhausted = set() if exhausted is None else exhausted
    if blocklists is None:
        blocklists = await any_blocklist(c)
    # shot -> nodes rendering it, as this transaction claims
    rendering = {} if rendering is None else rendering
    out: list[Assignment | None] = []
    for node_id, offer in nodes:
        if offer in exhausted and not blocklists:
            out.append(None)
            continue
        assignment = await claim(c, node_id, offer, lease_seconds, blocklist_threshold,
                                 target_job_seconds, nodes_online, farm, rendering)
        if assignment is None:
            exhausted.add(offer)
        out.append(assignment)
    return out


async def any_blocklist(c: Connection) -> bool:
    """Whether some node may not take some job (then equal offers may differ)."""
    # A re-render that one node may not take (issue 17) is as good as a blocklist here.
    # `status || ''` keeps the planner off the status index (every queued job, on each
    # dispatch round: 97 % of a busy coordinator's time) and on the small jobs_avoiding.
    return bool(await c.fetchval(
        """SELECT EXISTS (SELECT 1 FROM blocklist) OR EXISTS (SELECT 1 FROM jobs
           WHERE avoid_node IS NOT NULL AND status || '' = 'queued')"""))


ClaimRequest = tuple[list[tuple[str, Offer]], "tuple[str, str] | None", "set[Offer] | None"]
Finished = tuple[str, "dict | None"]


async def claim_batch(c: Connection, requests: list[ClaimRequest], lease_seconds: float,
                      blocklist_threshold: int, target_job_seconds: float,
                      nodes_online: int, farm: frozenset[tuple[int, ...]] = frozenset(),
                      ) -> list[tuple[Finished | None, list[Assignment | None]]]:
    """Several claims in one transaction, each `(nodes, finishing, exhausted)`: the
    attempt `finishing` (attempt id, log tail) is closed first, then `claim_many` for
    `nodes`. The counts of nodes per shot are shared, so caps and fair share hold
    across the batch; a job finished here is one node fewer on its shot."""
    rendering: dict[int, int] = {}
    blocklists = await any_blocklist(c)
    out: list[tuple[Finished | None, list[Assignment | None]]] = []
    for nodes, finishing, exhausted in requests:
        outcome: Finished | None = None
        if finishing is not None:
            outcome = await finish(c, *finishing)
            if outcome[0] == "missing":
                out.append((outcome, [None] * len(nodes)))
                continue
            if outcome[1] is not None and outcome[1]["shot_id"] in rendering:
                rendering[outcome[1]["shot_id"]] -= 1
        out.append((outcome, await claim_many(
            c, nodes, lease_seconds, blocklist_threshold, target_job_seconds, nodes_online,
            farm, exhausted, rendering, blocklists)))
    return out


async def _assign(c: Connection, job: Row, shot_row: Row, node_id: str, lease_seconds: float,
                  target: float, nodes_online: int) -> Assignment:
    now = time.time()
    shot_id, avg_time = shot_row["id"], shot_row["avg_time"]
    frames = orjson.loads(job["frames"])
    # Only an earlier attempt can have delivered some of a job's frames.
    done = {r["number"] for r in await c.fetchall(
        "SELECT number FROM frames WHERE job_id = ? AND status = 'done'", (job["id"],))} \
        if job["attempts"] else set()
    todo = [f for f in frames if f not in done]
    fixed = shot_row["chunk_mode"] == "fixed"   # the artist's chunk size, as asked
    keep, rest = (todo, []) if fixed else split_for_duration(todo, avg_time, target)
    if rest:
        new_id = await c.fetchval(
            "INSERT INTO jobs (shot_id, ordinal, status, frames) VALUES (?,?,?,?) RETURNING id",
            (shot_id, job["ordinal"], JobStatus.QUEUED.value, orjson.dumps(rest).decode()))
        await c.executemany("UPDATE frames SET job_id = ? WHERE shot_id = ? AND number = ?",
                            [(new_id, shot_id, n) for n in rest])
        moved = set(rest)
        frames = [f for f in frames if f not in moved]
    elif not fixed and avg_time and len(keep) * avg_time < target / 2:
        extra = await _absorb_following(c, job["id"], shot_id, frames, avg_time, target,
                                        nodes_online)
        frames += extra
        keep += extra
    attempt_id = uuid.uuid4().hex
    job_row = job_dict((await c.fetchall(
        """UPDATE jobs SET status = 'running', node_id = ?, attempt_id = ?, frames = ?,
           attempts = attempts + 1, lease_expires = ?, started_at = ?, finished_at = NULL
           WHERE id = ? RETURNING *, (SELECT name FROM nodes WHERE id = ?) AS node_name""",
        (node_id, attempt_id, orjson.dumps(frames).decode(), now + lease_seconds, now,
         job["id"], node_id)))[0])
    await c.execute("UPDATE frames SET status = 'rendering' WHERE job_id = ? "
                    "AND status != 'done'", (job["id"],))
    shot = dict(shot_row)
    del shot["avg_time"]
    if shot["status"] != ShotStatus.ACTIVE.value:
        await shot_sql.set_status(c, shot_id, ShotStatus.ACTIVE)
        shot = dict((await c.fetchall("SELECT * FROM shots WHERE id = ?", (shot_id,)))[0])
    return Assignment(job_row, attempt_id, keep, shot)


async def _absorb_following(c: Connection, job_id: int, shot_id: int, frames: list[int],
                            avg_time: float, target: float, nodes_online: int) -> list[int]:
    """Merge the queued jobs that continue `frames` into this one; returns new frames."""
    left = await c.fetchval("SELECT frames_total - frames_done FROM shots WHERE id = ?",
                            (shot_id,))
    budget = min(int(target / avg_time + 1e-6), max(1, left // max(1, nodes_online))) \
        - len(frames)
    if budget <= 0 or not frames:
        return []
    following = await c.fetchall(
        """SELECT id, frames FROM jobs WHERE status = 'queued' AND shot_id = ? AND id != ?
           AND attempts = 0 AND avoid_node IS NULL ORDER BY ordinal, id LIMIT 64""" + c.dialect.skip_locked,
        (shot_id, job_id))
    step = frames[1] - frames[0] if len(frames) > 1 else None
    taken: list[int] = []
    last = frames[-1]
    for other in following:
        more = orjson.loads(other["frames"])
        gap = more[0] - last
        if gap <= 0 or (step is not None and gap != step) or len(taken) + len(more) > budget:
            break
        step = step or gap
        await c.execute("DELETE FROM jobs WHERE id = ?", (other["id"],))
        taken += more
        last = more[-1]
    if taken:
        await c.executemany("UPDATE frames SET job_id = ? WHERE shot_id = ? AND number = ?",
                            [(job_id, shot_id, n) for n in taken])
    return taken


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


async def finish(c: Connection, attempt_id: str, log_tail: str = "") -> tuple[str, dict | None]:
    """The node says the attempt is done: 'done', 'missing' (frames absent) or 'stale'."""
    # One statement on the path every job takes; the other two outcomes look again.
    row = await c.fetchall(
        """UPDATE jobs SET status = 'done', finished_at = ?, lease_expires = NULL, log_tail = ?
           WHERE attempt_id = ? AND status = 'running'
             AND NOT EXISTS (SELECT 1 FROM frames f WHERE f.job_id = jobs.id
                             AND f.status != 'done')
           RETURNING *""",
        (time.time(), log_tail or None, attempt_id))
    if not row:
        job = await _running(c, attempt_id)
        return ("stale", None) if job is None else ("missing", dict(job))
    done = job_dict(row[0])
    done["node_name"] = await _node_name(c, done["node_id"])
    await shot_sql.complete_if_done(c, done["shot_id"])
    return "done", done


async def finish_then_claim(c: Connection, attempt_id: str, log_tail: str,
                            nodes: list[tuple[str, Offer]], *claim_settings: Any,
                      ) -> tuple[tuple[str, dict | None], list[Assignment | None]]:
    """`finish`, then (when the job is done) `claim_many` for the node that did it."""
    outcome = await finish(c, attempt_id, log_tail)
    claims: list[Assignment | None] = [None] * len(nodes)
    if outcome[0] != "missing":
        claims = await claim_many(c, nodes, *claim_settings)
    return outcome, claims


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
