"""The PostgreSQL side of copying a farm in (`brender-coordinator migrate --to`):
which tables and columns it has, rows added page by page, identity keys moved past
every id the old farm gave, and the counts that check the copy."""
from __future__ import annotations

from typing import Sequence

from .connection import Connection


async def columns(c: Connection) -> dict[str, list[str]]:
    """Each table of the farm's schema and its columns."""
    out: dict[str, list[str]] = {}
    for r in await c.fetchall(
            """SELECT table_name, column_name FROM information_schema.columns
               WHERE table_schema = current_schema() AND table_name != 'schema_version'
               ORDER BY table_name, ordinal_position"""):
        out.setdefault(r["table_name"], []).append(r["column_name"])
    return out


async def identity_tables(c: Connection) -> list[str]:
    """Tables whose `id` the database gives (never the same twice)."""
    return [r["table_name"] for r in await c.fetchall(
        """SELECT table_name FROM information_schema.columns
           WHERE table_schema = current_schema() AND column_name = 'id'
             AND is_identity = 'YES'""")]


async def count(c: Connection, table: str) -> int:
    return int(await c.fetchval(f"SELECT COUNT(*) FROM {table}"))


async def add_rows(c: Connection, table: str, names: Sequence[str],
                   rows: list[tuple]) -> None:
    marks = ", ".join("?" for _ in names)
    await c.executemany(f"INSERT INTO {table} ({', '.join(names)}) VALUES ({marks})", rows)


async def ids_after(c: Connection, table: str, last: int) -> None:
    """The next id `table` gives is above `last` and above every id in it."""
    await c.execute(
        f"""SELECT setval(pg_get_serial_sequence('{table}', 'id'), n, n > 0)
            FROM (SELECT GREATEST(COALESCE(MAX(id), 0), ?, 1) AS n FROM {table}) m""",
        (last,))
