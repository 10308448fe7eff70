"""SQL for taking a job once a claim has chosen its shot (claims.py chooses).

A job that keeps its frames (the artist's chunk size, or no frame time measured yet)
is taken and started in one statement on PostgreSQL, and so are a node's finished job
and its next one (`finish_and_take`); an adaptive job that may be cut or joined is
read, reshaped, then started (`assign`).
"""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import orjson

from ..chunking import split_for_duration
from ..states import JobStatus, ShotStatus
from . import shots as shot_sql
from .connection import Connection, Row, one_statement
from .jobs import finish_gated, finish_params, job_dict, settle_done


@dataclass
class Assignment:
    job: dict
    attempt_id: str
    frames: list[int]
    shot: dict
    blender_version: str | None = None  # which of the node's Blenders (None: its first)
    device: str | None = None           # the shot's device (None: the file's setting)


# A shot's queued jobs a node may take (shot, node, nodes online), in their order.
_QUEUED = """FROM jobs WHERE status = 'queued' AND shot_id = ?
               AND (avoid_node IS NULL OR avoid_node != ? OR ? < 2){gate}
             ORDER BY ordinal, id LIMIT 1"""
NEXT_QUEUED = "SELECT id, frames, ordinal, attempts " + _QUEUED.format(gate="")

# The next queued job of a shot, started, with its frames marked rendering: one
# statement (data-modifying WITH). `done`: the frames an earlier attempt delivered.
# `{before}`: CTEs ahead of it; `{gate}`: a condition the taking waits on.
_TAKE = """WITH {before}next AS (SELECT id """ + _QUEUED + """ FOR UPDATE SKIP LOCKED),
  rendering AS (UPDATE frames SET status = 'rendering'
                WHERE job_id = (SELECT id FROM next) AND status != 'done'),
  started AS (UPDATE jobs SET status = 'running', node_id = ?, attempt_id = ?,
      attempts = attempts + 1, lease_expires = ?, started_at = ?, finished_at = NULL
    WHERE id = (SELECT id FROM next)
    RETURNING *, (SELECT name FROM nodes WHERE id = ?) AS node_name,
      CASE WHEN attempts > 1 THEN ARRAY(SELECT number FROM frames
           WHERE job_id = jobs.id AND status = 'done') END AS done)
  """
TAKE_NEXT = _TAKE.format(before="", gate="") + "SELECT * FROM started"


def keeps_its_frames(shot: Row) -> bool:
    """Whether a job of `shot` is rendered as queued: the artist's chunk size, or no
    frame time measured yet (adaptive chunks cut or join jobs by it: `assign`)."""
    return shot["chunk_mode"] == "fixed" or not shot["avg_time"]


async def take_next(c: Connection, shot_row: Row, node_id: str, lease_seconds: float,
                    nodes_online: int) -> Assignment | None:
    """`assign` of the next queued job, for a job that keeps its frames, in one round
    trip instead of two: a claim's round trips wait on the database server, each
    waking its process (PostgreSQL)."""
    attempt_id = uuid.uuid4().hex
    rows = await c.fetchall(TAKE_NEXT, _take_params(shot_row, node_id, attempt_id,
                                                    lease_seconds, nodes_online))
    return await _taken(c, shot_row, dict(rows[0]), attempt_id) if rows else None


def _take_params(shot_row: Row, node_id: str, attempt_id: str, lease_seconds: float,
                 nodes_online: int) -> tuple:
    now = time.time()
    return (shot_row["id"], node_id, nodes_online, node_id, attempt_id, now + lease_seconds,
            now, node_id)


async def _taken(c: Connection, shot_row: Row, job: dict, attempt_id: str) -> Assignment:
    done = set(job.pop("done") or ())
    job_row = job_dict(job)
    keep = [f for f in job_row["frames"] if f not in done]
    return await started(c, shot_row, job_row, attempt_id, keep)


async def finish_and_take(c: Connection, finishing: tuple[str, str], shot_row: Row,
                          node_id: str, lease_seconds: float, nodes_online: int,
                          ) -> tuple[tuple[str, dict], Assignment | None] | None:
    """`jobs.finish` of the attempt `finishing` (attempt id, log tail), then `take_next`
    for the node that did it, in one statement (PostgreSQL): a node's "done" is then
    one round trip to the server, not two. The next job is taken only when the
    attempt is done. None: it was not (stale, or frames missing), and nothing was
    changed: the caller asks again the usual way. Else the outcome, and the
    assignment (None: the shot had no queued job left)."""
    finished, started_row, _, attempt_id = await _finish_and_take(
        c, finishing, shot_row, node_id, lease_seconds, nodes_online)
    if finished is None:
        return None
    outcome = await settle_done(c, finished)
    if started_row is None:
        return outcome, None
    return outcome, await _taken(c, shot_row, started_row, attempt_id)


@dataclass
class TakenAsSeen:
    """What `finish_and_take_as_seen` did."""
    generation: int                      # the farm's dispatch generation as it ran
    outcome: tuple[str, dict] | None     # the finish (None: nothing was changed)
    assignment: Assignment | None = None
    finished: dict | None = None         # the job, when it took none: settle it


@one_statement
async def finish_and_take_as_seen(c: Connection, finishing: tuple[str, str], shot_row: Row,
                                  generation: int, node_id: str, lease_seconds: float,
                                  nodes_online: int) -> TakenAsSeen:
    """`finish_and_take` on its own, outside any transaction, for a choice made from
    dispatchable shots read earlier at the farm's dispatch `generation`: it holds only
    while the generation is still that (nothing a choice reads has changed since), so
    a node's "done" and next job are one round trip, not a transaction of four.
    `shot_row` must be an active shot's (taking from it then writes nothing more).

    When it took no job (the shot has no queued job left), the finished job comes back
    unsettled (`finished`): the caller settles it in a transaction (`jobs.settle_done`:
    the shot may be complete) and asks for a job the usual way."""
    finished, started_row, now, attempt_id = await _finish_and_take(
        c, finishing, shot_row, node_id, lease_seconds, nodes_online, generation)
    if finished is None:
        return TakenAsSeen(now, None)
    if started_row is None:
        return TakenAsSeen(now, None, finished=finished)
    # A job was taken, so others of the shot were left: settling writes nothing.
    outcome = await settle_done(c, finished)
    return TakenAsSeen(now, outcome, await _taken(c, shot_row, started_row, attempt_id))


async def _finish_and_take(c: Connection, finishing: tuple[str, str], shot_row: Row,
                           node_id: str, lease_seconds: float, nodes_online: int,
                           generation: int | None = None,
                           ) -> tuple[dict | None, dict | None, int, str]:
    """The statement: (finished job, started job, the dispatch generation it ran at,
    the new attempt id). With `generation`, it does nothing unless that is the farm's."""
    attempt_id = uuid.uuid4().hex
    gate = "" if generation is None else f" AND {c.dialect.dispatch_generation} = ?"
    finished = f"finished AS ({finish_gated(gate)}{c.dialect.returning_job_extras}), "
    rows = await c.fetchall(
        _TAKE.format(before=finished, gate=" AND EXISTS (SELECT 1 FROM finished)")
        + f"""SELECT (SELECT row_to_json(f) FROM finished f) AS finished,
                     (SELECT row_to_json(s) FROM started s) AS started,
                     {c.dialect.dispatch_generation} AS generation""",
        (*finish_params(*finishing), *(() if generation is None else (generation,)),
         *_take_params(shot_row, node_id, attempt_id, lease_seconds, nodes_online)))
    return (_json(rows[0]["finished"]), _json(rows[0]["started"]), rows[0]["generation"],
            attempt_id)


def _json(value: Any) -> dict | None:
    """A `row_to_json` column as a dict (the driver may hand it over as text)."""
    if value is None or isinstance(value, dict):
        return value
    loaded: dict = orjson.loads(value)
    return loaded


async def started(c: Connection, shot_row: Row, job_row: dict, attempt_id: str,
                  keep: list[int]) -> Assignment:
    shot = dict(shot_row)
    del shot["avg_time"]
    if shot["status"] != ShotStatus.ACTIVE.value:
        await shot_sql.set_status(c, shot["id"], ShotStatus.ACTIVE)
        shot = dict((await c.fetchall("SELECT * FROM shots WHERE id = ?", (shot["id"],)))[0])
    return Assignment(job_row, attempt_id, keep, shot)


async def assign(c: Connection, job: Row, shot_row: Row, node_id: str, lease_seconds: float,
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
        extra = await absorb_following(c, job["id"], shot_id, frames, avg_time, target,
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
    return await started(c, shot_row, job_dict(rows[0]), attempt_id, keep)


async def absorb_following(c: Connection, job_id: int, shot_id: int, frames: list[int],
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
