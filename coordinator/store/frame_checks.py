"""SQL for what follows a frame's record in its transaction (issue 17): the frame
checks' verdict, the automatic re-render of a suspicious frame, and its delivery queued.

A re-render is a new one-frame job that the node which rendered the suspicious frame
may not claim (`jobs.avoid_node`) while another node is connected (a farm of one node
renders it there again rather than never); the frame goes back to the queue with it and its
shot counts it as not done. It happens once per frame: `rerendered_from` names the
first node, and a frame that has one is never sent again."""
from __future__ import annotations

from typing import Any

import orjson

from ..frame_checks import NEIGHBOURS, verdict
from ..states import JobStatus
from .connection import Connection, Row

NEIGHBOUR_SIZES = f"""
    SELECT size FROM (SELECT size FROM frames WHERE shot_id = ? AND number < ?
                      AND status = 'done' AND suspicious IS NULL
                      ORDER BY number DESC LIMIT {NEIGHBOURS}) AS below
    UNION ALL
    SELECT size FROM (SELECT size FROM frames WHERE shot_id = ? AND number > ?
                      AND status = 'done' AND suspicious IS NULL
                      ORDER BY number LIMIT {NEIGHBOURS}) AS above"""


def delivery_of(shot: Row | dict[str, Any]) -> str | None:
    """A frame's delivery as it is recorded: pending when its shot is delivered to studio
    storage."""
    return "pending" if shot["output_template"] else None


def neighbours_of(shot_id: int, number: int) -> tuple[int, int, int, int]:
    """`NEIGHBOUR_SIZES`' parameters."""
    return (shot_id, number, shot_id, number)


async def judge(c: Connection, frame: dict[str, Any], checks: dict | None,
                shot: Row | None = None, sizes: list[int] | None = None) -> dict[str, Any]:
    """Flag the frame just recorded when it looks wrong; re-render it once on another
    node when its shot asks; queue its delivery. `shot`: its shot's output_template and
    rerender_suspicious when the caller read them already; `sizes`: its neighbours'
    (`NEIGHBOUR_SIZES`), when read already. Returns the frame's changed fields."""
    shot_id, number = frame["shot_id"], frame["number"]
    if shot is None:
        shot = await c.fetchone("SELECT output_template, rerender_suspicious FROM shots "
                                "WHERE id = ?", (shot_id,))
    assert shot is not None   # the record found the frame's job in it
    if sizes is None:
        sizes = [r["size"] for r in await c.fetchall(NEIGHBOUR_SIZES,
                                                     neighbours_of(shot_id, number))]
    reason = verdict(checks, frame["size"], sizes)
    changes: dict[str, Any] = {"suspicious": reason, "delivery": delivery_of(shot),
                               "delivery_error": None}
    if reason and shot["rerender_suspicious"] and not frame.get("rerendered_from") \
            and frame.get("node_id"):
        await _rerender(c, frame)
        # Its delivery stays pending: only a done frame is copied, so the studio gets
        # the new render (over an older copy at that path, if there is one).
        changes.update(status="queued", rerendered_from=frame["node_id"])
    unchanged = all(frame.get(k) == v for k, v in changes.items())
    if not unchanged:   # most frames: fine, their delivery queued by the record
        await c.execute(
            """UPDATE frames SET suspicious = ?, delivery = ?, delivery_error = NULL
               WHERE shot_id = ? AND number = ?""",
            (changes["suspicious"], changes["delivery"], shot_id, number))
    return changes


async def _rerender(c: Connection, frame: dict[str, Any]) -> None:
    shot_id, number, node_id = frame["shot_id"], frame["number"], frame["node_id"]
    ordinal = await c.fetchval("SELECT ordinal FROM jobs WHERE id = ?", (frame["job_id"],))
    job_id = await c.fetchval(
        """INSERT INTO jobs (shot_id, ordinal, status, frames, avoid_node)
           VALUES (?, ?, ?, ?, ?) RETURNING id""",
        (shot_id, ordinal or 0, JobStatus.QUEUED.value, orjson.dumps([number]).decode(),
         node_id))
    await c.execute(
        """UPDATE frames SET status = 'queued', job_id = ?, rerendered_from = ?
           WHERE shot_id = ? AND number = ?""", (job_id, node_id, shot_id, number))
    await c.execute("UPDATE shots SET frames_done = frames_done - 1 WHERE id = ?", (shot_id,))


async def suspicious(c: Connection, shot_id: int) -> list[dict]:
    """A shot's frames flagged suspicious, in order."""
    rows = await c.fetchall(
        """SELECT number, name, status, suspicious, rerendered_from, node_id FROM frames
           WHERE shot_id = ? AND suspicious IS NOT NULL ORDER BY number""", (shot_id,))
    return [dict(r) for r in rows]
