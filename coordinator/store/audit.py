"""SQL for the audit log: every mutating call, who made it, when, from where (issue 18)."""
from __future__ import annotations

from .connection import Connection, one_statement

MAX_PAGE = 1000


INSERT = "INSERT INTO audit_log (at, actor, role, method, path, status, address) "
COLUMN_TYPES = ["float8", "text", "text", "text", "text", "integer", "text"]


@one_statement
async def record_many(c: Connection, rows: list[tuple]) -> None:
    """`record` for each row (at, actor, role, method, path, status, address). One
    statement on PostgreSQL: each frame upload waits for its row before it is answered."""
    if c.dialect.array_rows:
        await c.execute(INSERT + c.dialect.rows_from_arrays(COLUMN_TYPES),
                        [list(column) for column in zip(*rows)])
    else:
        await c.executemany(INSERT + "VALUES (?,?,?,?,?,?,?)", rows)


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
