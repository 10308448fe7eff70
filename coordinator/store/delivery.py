"""SQL for delivery to studio storage (issue 17): what a frame's delivery copies, its
outcome, what is left to deliver after a restart, and a shot's delivery summary."""
from __future__ import annotations

from .connection import Connection

# Frame numbers in one query's `IN (...)`: far below any database's parameter limit.
MAX_NUMBERS = 500


async def sources(c: Connection, keys: list[tuple[int, int]]) -> list[dict]:
    """What delivering each (shot id, number) that still exists needs: its file and its
    shot's template and root. One query per shot (a group is mostly of one shot)."""
    numbers: dict[int, list[int]] = {}
    for shot_id, number in keys:
        numbers.setdefault(shot_id, []).append(number)
    found: list[dict] = []
    for shot_id, wanted in numbers.items():
        for first in range(0, len(wanted), MAX_NUMBERS):
            part = wanted[first:first + MAX_NUMBERS]
            rows = await c.fetchall(
                f"""SELECT f.shot_id, f.number, f.name, f.path, f.sha256, f.status,
                           f.delivery, s.name AS shot_name, s.blend_path,
                           s.output_template, s.output_root
                    FROM frames f JOIN shots s ON s.id = f.shot_id
                    WHERE f.shot_id = ? AND f.number IN ({", ".join("?" * len(part))})""",
                (shot_id, *part))
            found.extend(dict(r) for r in rows)
    return found


async def delivered_many(c: Connection, frames: list[tuple[int, int, str]]) -> int:
    """`delivered` for each (shot id, number, sha256), each shot's error cleared once;
    how many were still that render. One UPDATE per shot (a statement a frame cost the
    event loop as much as the rest of the group's bookkeeping)."""
    digests: dict[int, dict[int, str]] = {}
    for shot_id, number, sha in frames:
        digests.setdefault(shot_id, {})[number] = sha
    count = 0
    for shot_id, by_number in digests.items():
        numbers = list(by_number)
        changed = 0
        for first in range(0, len(numbers), MAX_NUMBERS):
            part = numbers[first:first + MAX_NUMBERS]
            # Each frame's own digest: a number whose render changed since is left alone.
            cases = " ".join("WHEN ? THEN ?" for _ in part)
            changed += await c.execute(
                f"""UPDATE frames SET delivery = 'delivered', delivery_error = NULL
                    WHERE shot_id = ? AND number IN ({", ".join("?" * len(part))})
                    AND sha256 = CASE number {cases} END""",
                (shot_id, *part, *(v for n in part for v in (n, by_number[n]))))
        if changed:
            await _shot_delivered(c, shot_id)
        count += changed
    return count


async def _shot_delivered(c: Connection, shot_id: int) -> None:
    """The shot's last delivery error goes once none of its frames is failing."""
    await c.execute(
        """UPDATE shots SET delivery_error = NULL WHERE id = ? AND delivery_error IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM frames WHERE shot_id = ? AND delivery = 'failed')""",
        (shot_id, shot_id))


async def failed(c: Connection, shot_id: int, number: int, reason: str) -> None:
    await c.execute("""UPDATE frames SET delivery = 'failed', delivery_error = ?
                       WHERE shot_id = ? AND number = ? AND delivery IS NOT NULL""",
                    (reason, shot_id, number))
    await c.execute("""UPDATE shots SET delivery_failures = delivery_failures + 1,
                       delivery_error = ? WHERE id = ?""", (reason, shot_id))


async def undelivered(c: Connection, rendered_before: float | None = None,
                      ) -> list[tuple[int, int]]:
    """Frames recorded but not delivered yet (after a restart: they are tried again),
    those rendered before `rendered_before` if given."""
    since = "" if rendered_before is None else "AND rendered_at < ?"
    rows = await c.fetchall(
        f"""SELECT shot_id, number FROM frames
            WHERE (delivery = 'pending' OR delivery = 'failed') AND status = 'done' {since}
            ORDER BY shot_id, number""", () if rendered_before is None else (rendered_before,))
    return [(r["shot_id"], r["number"]) for r in rows]


async def summary(c: Connection, shot_id: int) -> dict | None:
    """A shot's delivery: template, root, frames per state, failures, the failing frames."""
    shot = await c.fetchone("""SELECT output_template, output_root, delivery_failures,
                               delivery_error FROM shots WHERE id = ?""", (shot_id,))
    if shot is None:
        return None
    counts = {r["delivery"]: r["n"] for r in await c.fetchall(
        """SELECT delivery, COUNT(*) AS n FROM frames WHERE shot_id = ?
           AND delivery IS NOT NULL GROUP BY delivery""", (shot_id,))}
    failing = await c.fetchall(
        """SELECT number, delivery_error FROM frames WHERE shot_id = ? AND delivery = 'failed'
           ORDER BY number LIMIT 100""", (shot_id,))
    return {"output_template": shot["output_template"], "output_root": shot["output_root"],
            "pending": counts.get("pending", 0), "delivered": counts.get("delivered", 0),
            "failed": counts.get("failed", 0), "failures": shot["delivery_failures"],
            "last_error": shot["delivery_error"],
            "failed_frames": [dict(r) for r in failing]}
