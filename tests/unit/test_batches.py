"""Work asked together goes in one write (coordinator/batches.py): each caller waits
for its own row's commit, rows queued together share one write, and a row that fails
fails only its own caller."""
from __future__ import annotations

import asyncio

import pytest

from coordinator.database import Database
from coordinator.batches import Batches
from coordinator.store.connection import Connection


async def make_table(c: Connection) -> None:
    await c.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL)")


async def insert_many(c: Connection, rows: list[tuple]) -> None:
    await c.executemany("INSERT INTO t (k, v) VALUES (?, ?)", rows)


async def all_rows(c: Connection) -> list[tuple]:
    return [tuple(r) for r in await c.fetchall("SELECT k, v FROM t ORDER BY k")]


async def test_rows_share_writes_and_a_bad_row_fails_only_its_caller(tmp_path):
    db = Database(tmp_path / "b.db")
    await db.open()
    try:
        await db.write(make_table)
        async def write(batch: list[tuple]) -> list[None]:
            await db.write(insert_many, batch)
            return [None] * len(batch)
        rows: Batches[tuple, None] = Batches(write, 500)
        # 2 twice: the second breaks the statement of its batch.
        results = await asyncio.gather(*(rows.add((k, f"v{k}")) for k in (1, 2, 3, 2, 4)),
                                       return_exceptions=True)
        assert [r is None for r in results] == [True, True, True, False, True]
        assert await db.read(all_rows) == [(1, "v1"), (2, "v2"), (3, "v3"), (4, "v4")]
        writes = rows.runs
        await asyncio.gather(*(rows.add((k, "x")) for k in range(10, 60)))
        assert rows.runs == writes + 1      # fifty rows asked at once: one write
        assert len(await db.read(all_rows)) == 54
        with pytest.raises(Exception):
            await rows.add((10, "again"))
    finally:
        await db.close()


async def test_runners_take_what_queued_while_the_others_wait_and_no_item_is_stranded():
    """Up to `runners` batches run at once: what is asked while one waits (on a round
    trip to the database) goes in another at once, not after it; and an item added
    just as every runner ends is still run."""
    gates: list[asyncio.Event] = []
    seen: list[list[int]] = []

    async def run(items: list[int]) -> list[int]:
        seen.append(items)
        gate = asyncio.Event()
        gates.append(gate)
        await gate.wait()
        return [i * 10 for i in items]

    two: Batches[int, int] = Batches(run, 100, runners=2)
    first = asyncio.ensure_future(two.add(1))
    await asyncio.sleep(0)
    second = asyncio.gather(two.add(2), two.add(3))
    await asyncio.sleep(0.01)
    assert seen == [[1], [2, 3]]        # the second batch did not wait for the first
    third = asyncio.ensure_future(two.add(4))
    await asyncio.sleep(0.01)
    assert seen == [[1], [2, 3]]        # two runners busy: 4 waits for one of them
    gates[1].set()
    assert await second == [20, 30]
    await asyncio.sleep(0.01)
    assert seen[2] == [4]
    gates[0].set()
    gates[2].set()
    assert (await first, await third) == (10, 40)

    one: Batches[int, int] = Batches(run, 100)
    gates.clear()
    seen.clear()
    waiting = [asyncio.ensure_future(one.add(k)) for k in (5, 6)]
    await asyncio.sleep(0.01)
    assert seen == [[5, 6]]
    gates[0].set()
    await asyncio.sleep(0)              # the runner ends as its batch settles
    late = asyncio.ensure_future(one.add(7))
    assert [await w for w in waiting] == [50, 60]
    await asyncio.sleep(0.01)
    gates[-1].set()
    assert await asyncio.wait_for(late, 2) == 70
