"""SQL for the audit log: every mutating call, who made it, when, from where (issue 18)."""
from __future__ import annotations

from .connection import Connection

MAX_PAGE = 1000


async def record(c: Connection, at: float, actor: str, role: str, method: str, path: str,
                 status: int, address: str) -> None:
    await c.execute(
        """INSERT INTO audit_log (at, actor, role, method, path, status, address)
           VALUES (?,?,?,?,?,?,?)""", (at, actor, role, method, path, status, address))


async def record_many(c: Connection, rows: list[tuple]) -> None:
    """`record` for each row (at, actor, role, method, path, status, address)."""
    await c.executemany(
        """INSERT INTO audit_log (at, actor, role, method, path, status, address)
           VALUES (?,?,?,?,?,?,?)""", rows)


async def recent(c: Connection, limit: int, before_id: int | None = None) -> list[dict]:
    """The newest entries first; `before_id` pages back."""
    if before_id is None:
        rows = await c.fetchall("SELECT * FROM audit_log ORDER BY id DESC LIMIT ?", (limit,))
    else:
        rows = await c.fetchall("SELECT * FROM audit_log WHERE id < ? ORDER BY id DESC LIMIT ?",
                                (before_id, limit))
    return [dict(r) for r in rows]


PRUNE_BATCH = 2000


async def prune(c: Connection, before: float, limit: int = PRUNE_BATCH) -> int:
    """Remove up to `limit` of the oldest entries made before `before` (epoch
    seconds); how many went. The caller repeats until fewer than `limit` go, one
    short write at a time, so the frame records queued meanwhile never wait long."""
    return await c.execute(
        """DELETE FROM audit_log WHERE id IN
           (SELECT id FROM audit_log WHERE at < ? ORDER BY at LIMIT ?)""", (before, limit))
