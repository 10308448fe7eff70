"""SQL for claims: which queued job a node that wants work gets (docs/scheduling.md).

One claim, the claims of a dispatch round, and a batch of them with the jobs the
asking nodes finished (claim_batch, on PostgreSQL: scheduler.py), each in one
transaction, so two nodes can never take the same job.
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
from . import shots as shot_sql
from .connection import Connection, Row
from .jobs import finish, job_dict


@dataclass
class Assignment:
    job: dict
    attempt_id: str
    frames: list[int]
    shot: dict
    blender_version: str | None = None  # which of the node's Blenders (None: its first)
    device: str | None = None           # the shot's device (None: the file's setting)


# Whether some node may not take some job, so that equal offers may differ: a
# blocklist, or a re-render that one node may not take (issue 17). `status || ''` keeps
# the planner off the status index (every queued job) and on the small jobs_avoiding;
# the scalar subquery in that index's order, not an EXISTS (PostgreSQL drops an
# EXISTS's ORDER BY), makes reading every job cost a sort too. Planned on an empty farm
# it still reads them all: see shots.create's ANALYZE.
ANY_BLOCKLIST = """SELECT EXISTS (SELECT 1 FROM blocklist) OR (
                     SELECT avoid_node FROM jobs
                     WHERE avoid_node IS NOT NULL AND status || '' = 'queued'
                     ORDER BY avoid_node LIMIT 1) IS NOT NULL"""

DISPATCHABLE = f"""SELECT s.*,
       CASE WHEN s.render_time_count > 0
            THEN s.render_time_sum / s.render_time_count END AS avg_time{{also}}
    FROM shots s
    WHERE s.status IN {DISPATCHABLE_SHOTS}
      AND EXISTS (SELECT 1 FROM jobs j WHERE j.status = 'queued' AND j.shot_id = s.id)
      AND NOT EXISTS (SELECT 1 FROM blocklist b WHERE b.shot_id = s.id
                      AND b.node_id = ? AND b.failures >= ?)
    ORDER BY s.priority DESC, s.created_at, s.id"""


async def dispatchable(c: Connection, node_id: str, blocklist_threshold: int) -> list[Row]:
    """Shots with queued work that `node_id` is not blocklisted from, best first."""
    return await c.fetchall(DISPATCHABLE.format(also=""), (node_id, blocklist_threshold))


async def dispatchable_to_all(c: Connection, blocklist_threshold: int) -> list[Row] | None:
    """`dispatchable` for every node alike; None when nodes differ (a blocklist, or a
    re-render some node must avoid: ANY_BLOCKLIST), so each reads its own. One round
    trip for both questions: each claim transaction asks them first."""
    rows = await c.fetchall(DISPATCHABLE.format(also=f", ({ANY_BLOCKLIST}) AS sets_apart"),
                            ("", blocklist_threshold))
    if rows and rows[0]["sets_apart"]:
        return None
    shots: list[Row] = []
    for row in rows:
        shot = dict(row)
        del shot["sets_apart"]
        shots.append(shot)
    return shots


async def claim(c: Connection, node_id: str, offer: Offer, lease_seconds: float,
                blocklist_threshold: int, target_job_seconds: float, nodes_online: int = 1,
                farm: frozenset[tuple[int, ...]] = frozenset(),
                rendering: dict[int, int] | None = None,
                shots: list[Row] | None = None) -> Assignment | None:
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
    farm, and the claims of one transaction share the counts in `rendering`. `shots`:
    the dispatchable shots, read once for claims that no blocklist tells apart.
    """
    if shots is None:
        shots = await dispatchable(c, node_id, blocklist_threshold)
    counts = {} if rendering is None else rendering

    async def rendering_of(shot_id: int) -> int:
        if shot_id not in counts:
            if c.dialect.for_update:
                # Other transactions (claims side by side, other coordinators) count this
                # shot too: the first to lock it counts and claims; the next counts after
                # that one commits, so a cap and a fair share hold farm-wide.
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
                      or await rendering_of(entry[1]["id"]) < entry[1]["max_nodes"]]
        if len(open_to_it) > 1:   # fair share: the fewest nodes first, then the oldest
            order = [(await rendering_of(e[1]["id"]), e[0], e) for e in open_to_it]
            open_to_it = [e for *_, e in sorted(order, key=lambda o: o[:2])]
        for _, shot, version, device in open_to_it:
            assignment = None
            if c.dialect.writes_in_with and _keeps_its_frames(shot):
                assignment = await _take_next(c, shot, node_id, lease_seconds, nodes_online)
            else:
                # Another coordinator's claim may hold a queued job: take the next one.
                job = await c.fetchone(
                    NEXT_QUEUED + c.dialect.skip_locked, (shot["id"], node_id, nodes_online))
                if job is not None:
                    assignment = await _assign(c, job, shot, node_id, lease_seconds,
                                               target_job_seconds, nodes_online)
            if assignment is not None:
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
                     blocklists: bool | None = None,
                     shots: list[Row] | None = None) -> list[Assignment | None]:
    """`claim` for each idle node of a dispatch round, in one transaction.

    `exhausted` collects the offers that found nothing: while no node is blocklisted
    from any shot, another node offering the same finds nothing either (claims only
    take work away), so it is not asked again (the caller keeps the set for a round).
    `rendering`, `blocklists` and `shots`: what `claim_batch` shares between its claims."""
    exhausted = set() if exhausted is None else exhausted
    if blocklists is None:
        shots = await dispatchable_to_all(c, blocklist_threshold)
        blocklists = shots is None
    # shot -> nodes rendering it, as this transaction claims
    rendering = {} if rendering is None else rendering
    out: list[Assignment | None] = []
    for node_id, offer in nodes:
        if offer in exhausted and not blocklists:
            out.append(None)
            continue
        assignment = await claim(c, node_id, offer, lease_seconds, blocklist_threshold,
                                 target_job_seconds, nodes_online, farm, rendering, shots)
        if assignment is None:
            exhausted.add(offer)
        out.append(assignment)
    return out




ClaimRequest = tuple[list[tuple[str, Offer]], "tuple[str, str] | None", "set[Offer] | None"]
Finished = tuple[str, "dict | None"]
Claimed = tuple["Finished | None", "list[Assignment | None]"]   # one request's outcome


async def claim_batch(c: Connection, requests: list[ClaimRequest], lease_seconds: float,
                      blocklist_threshold: int, target_job_seconds: float,
                      nodes_online: int, farm: frozenset[tuple[int, ...]] = frozenset(),
                      ) -> list[Claimed]:
    """Several claims in one transaction, each `(nodes, finishing, exhausted)`: the
    attempt `finishing` (attempt id, log tail) is closed first, then `claim_many` for
    `nodes`. The counts of nodes per shot are shared, so caps and fair share hold
    across the batch; a job finished here is one node fewer on its shot."""
    rendering: dict[int, int] = {}
    shots = await dispatchable_to_all(c, blocklist_threshold)
    blocklists = shots is None
    out: list[Claimed] = []
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
            farm, exhausted, rendering, blocklists, shots)))
    return out


NEXT_QUEUED = """SELECT id, frames, ordinal, attempts FROM jobs
                 WHERE status = 'queued' AND shot_id = ?
                   AND (avoid_node IS NULL OR avoid_node != ? OR ? < 2)
                 ORDER BY ordinal, id LIMIT 1"""

# The next queued job of a shot, started, with its frames marked rendering: one
# statement (data-modifying WITH). `done`: the frames an earlier attempt delivered.
TAKE_NEXT = f"""WITH next AS ({NEXT_QUEUED} FOR UPDATE SKIP LOCKED),
  rendering AS (UPDATE frames SET status = 'rendering'
                WHERE job_id = (SELECT id FROM next) AND status != 'done')
  UPDATE jobs SET status = 'running', node_id = ?, attempt_id = ?, attempts = attempts + 1,
      lease_expires = ?, started_at = ?, finished_at = NULL
  WHERE id = (SELECT id FROM next)
  RETURNING *, (SELECT name FROM nodes WHERE id = ?) AS node_name,
      CASE WHEN attempts > 1 THEN ARRAY(SELECT number FROM frames
           WHERE job_id = jobs.id AND status = 'done') END AS done"""


def _keeps_its_frames(shot: Row) -> bool:
    """Whether a job of `shot` is rendered as queued: the artist's chunk size, or no
    frame time measured yet (adaptive chunks cut or join jobs by it: `_assign`)."""
    return shot["chunk_mode"] == "fixed" or not shot["avg_time"]


async def _take_next(c: Connection, shot_row: Row, node_id: str, lease_seconds: float,
                     nodes_online: int) -> Assignment | None:
    """`_assign` of the next queued job, for a job that keeps its frames, in one round
    trip instead of two: a claim's round trips wait on the database server, each
    waking its process (PostgreSQL)."""
    now = time.time()
    attempt_id = uuid.uuid4().hex
    rows = await c.fetchall(TAKE_NEXT, (shot_row["id"], node_id, nodes_online, node_id,
                                        attempt_id, now + lease_seconds, now, node_id))
    if not rows:
        return None
    job = dict(rows[0])
    done = set(job.pop("done") or ())
    job_row = job_dict(job)
    keep = [f for f in job_row["frames"] if f not in done]
    return await _started(c, shot_row, job_row, attempt_id, keep)


async def _started(c: Connection, shot_row: Row, job_row: dict, attempt_id: str,
                   keep: list[int]) -> Assignment:
    shot = dict(shot_row)
    del shot["avg_time"]
    if shot["status"] != ShotStatus.ACTIVE.value:
        await shot_sql.set_status(c, shot["id"], ShotStatus.ACTIVE)
        shot = dict((await c.fetchall("SELECT * FROM shots WHERE id = ?", (shot["id"],)))[0])
    return Assignment(job_row, attempt_id, keep, shot)


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
    rendering = "UPDATE frames SET status = 'rendering' WHERE job_id = ? AND status != 'done'"
    start = """UPDATE jobs SET status = 'running', node_id = ?, attempt_id = ?, frames = ?,
               attempts = attempts + 1, lease_expires = ?, started_at = ?, finished_at = NULL
               WHERE id = ? RETURNING *, (SELECT name FROM nodes WHERE id = ?) AS node_name"""
    params = (node_id, attempt_id, orjson.dumps(frames).decode(), now + lease_seconds, now,
              job["id"], node_id)
    if c.dialect.writes_in_with:   # the job and its frames in one round trip
        rows = await c.fetchall(f"WITH rendering AS ({rendering}) {start}", (job["id"], *params))
    else:
        rows = await c.fetchall(start, params)
        await c.execute(rendering, (job["id"],))
    return await _started(c, shot_row, job_dict(rows[0]), attempt_id, keep)


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


async def finish_then_claim(c: Connection, attempt_id: str, log_tail: str,
                            nodes: list[tuple[str, Offer]], *claim_settings: Any,
                      ) -> tuple[tuple[str, dict | None], list[Assignment | None]]:
    """`finish`, then (when the job is done) `claim_many` for the node that did it."""
    outcome = await finish(c, attempt_id, log_tail)
    claims: list[Assignment | None] = [None] * len(nodes)
    if outcome[0] != "missing":
        claims = await claim_many(c, nodes, *claim_settings)
    return outcome, claims
