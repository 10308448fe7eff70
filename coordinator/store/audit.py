"""SQL for the audit log: every mutating call, who made it, when, from where (issue 18)."""
from __future__ import annotations

from .connection import Connection

MAX_PAGE = 1000


async def record(c: Connection, at: float, actor: str, role: str, method: str, path: str,
                 status: int, address: str) -> None:
    await c.execute(
        """INSERT INTO audit_log (at, actor, role, method, path, status, address)
           VALUES (?,?,?,?,?,?,?)""", (at, actor, role, method, path, status, address))


async def recent(c: Connection, limit: int, before_id: int | None = None) -> list[dict]:
    """The newest entries first; `before_id` pages back."""
    if before_id is None:
        rows = await c.fetchall("SELECT * FROM audit_log ORDER BY id DESC LIMIT ?", (limit,))
    else:
        rows = await c.fetchall("SELECT * FROM audit_log WHERE id < ? ORDER BY id DESC LIMIT ?",
                                (before_id, limit))
    return [dict(r) for r in rows]
