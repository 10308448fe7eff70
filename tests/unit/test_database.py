"""The database facade's write path: group commit with one savepoint per write."""
from __future__ import annotations

import asyncio
import sqlite3
import time

import pytest

from coordinator.database import slow



def insert(c: sqlite3.Connection, k: int, v: str) -> int:
    c.execute("INSERT INTO t VALUES (?, ?)", (k, v))
    return k


def insert_then_fail(c: sqlite3.Connection, k: int) -> None:
    c.execute("INSERT INTO t VALUES (?, 'doomed')", (k,))
    raise LookupError(f"write {k} refused")


def rows(c: sqlite3.Connection) -> list[tuple]:
    return [tuple(r) for r in c.execute("SELECT k, v FROM t ORDER BY k")]


async def test_a_write_on_a_free_connection_is_done_before_write_returns_to_the_loop(db):
    task = asyncio.ensure_future(db.write(insert, 1, "now"))
    await asyncio.sleep(0)  # one turn of the loop: the write ran in it, no batch waited
    assert task.done() and task.result() == 1
    assert await db.read(rows) == [(1, "now")]


@slow
def slow_insert(c: sqlite3.Connection, k: int) -> int:
    time.sleep(0.05)
    return insert(c, k, "slow")


async def test_writes_that_wait_for_the_connection_share_transactions_in_order(db):
    before = db.batches
    first = asyncio.ensure_future(db.write(slow_insert, 1000))   # lends the connection
    await asyncio.sleep(0)
    results = await asyncio.gather(*(db.write(insert, k, f"v{k}") for k in range(200)))
    assert await first == 1000 and results == list(range(200))
    assert await db.read(rows) == [(k, f"v{k}") for k in range(200)] + [(1000, "slow")]
    # 200 writes that queued behind the slow one did not take 200 transactions.
    assert db.batches - before < 20


async def test_batched_writes_asked_for_together_share_a_transaction(db):
    before = db.batches
    urgent = asyncio.ensure_future(db.write(insert, 999, "urgent"))
    results = await asyncio.gather(
        *(db.write(insert, k, f"v{k}", batched=True) for k in range(100)))
    assert results == list(range(100)) and await urgent == 999
    assert await db.read(rows) == [(k, f"v{k}") for k in range(100)] + [(999, "urgent")]
    assert db.batches - before <= 3   # the urgent write, then one or two batches


async def test_a_failing_write_rolls_back_only_itself(db):
    outcomes = await asyncio.gather(
        db.write(insert, 1, "a"), db.write(insert_then_fail, 2), db.write(insert, 3, "c"),
        db.write(insert, 1, "duplicate"), db.write(insert, 4, "d"),
        return_exceptions=True)
    assert outcomes[0] == 1 and outcomes[2] == 3 and outcomes[4] == 4
    assert isinstance(outcomes[1], LookupError)
    assert isinstance(outcomes[3], sqlite3.IntegrityError)
    assert await db.read(rows) == [(1, "a"), (3, "c"), (4, "d")]


async def test_writes_run_in_the_order_asked(db):
    def append(c: sqlite3.Connection, v: str) -> None:
        c.execute("INSERT INTO t (v) VALUES (?)", (v,))

    await asyncio.gather(*(db.write(append, str(i)) for i in range(50)))
    assert [v for _, v in await db.read(rows)] == [str(i) for i in range(50)]


async def test_a_transaction_sqlite_aborts_fails_every_write_in_it(db):
    """SQLite rolls a whole transaction back on some errors (disk full, I/O): the
    writes before the failing one in that transaction must not report success."""
    def abort_everything(c: sqlite3.Connection) -> None:
        c.execute("ROLLBACK")  # what SQLite does by itself on SQLITE_FULL
        raise sqlite3.OperationalError("database or disk is full")

    outcomes = await asyncio.gather(
        db.write(insert, 1, "a"), db.write(abort_everything), db.write(insert, 2, "b"),
        return_exceptions=True)
    assert isinstance(outcomes[1], sqlite3.OperationalError)
    if isinstance(outcomes[0], int):  # it was committed in an earlier batch
        assert (1, "a") in await db.read(rows)
    else:
        assert isinstance(outcomes[0], sqlite3.OperationalError)
        assert (1, "a") not in await db.read(rows)
    assert outcomes[2] == 2 and (2, "b") in await db.read(rows)
    # The connection is usable afterwards.
    assert await db.write(insert, 9, "z") == 9


async def test_a_write_alone_in_its_transaction_is_undone_whole_when_it_fails(db):
    with pytest.raises(LookupError):
        await db.write(insert_then_fail, 5)
    assert await db.read(rows) == []
    assert await db.write(insert, 6, "f") == 6
    assert await db.read(rows) == [(6, "f")]


async def test_the_last_writes_of_a_burst_reach_the_database_file(db, tmp_path):
    """The WAL is copied into the database file a second after the last write, even
    when nothing is written after it (reads are slower while it is not)."""
    for k in range(50):
        await db.write(insert, k, "burst")
    await asyncio.sleep(db.CHECKPOINT_SECONDS + 0.5)
    alone = tmp_path / "copy.db"   # the database file without its WAL
    alone.write_bytes(db.path.read_bytes())
    conn = sqlite3.connect(alone)
    try:
        assert conn.execute("SELECT COUNT(*) FROM t").fetchone()[0] == 50
    finally:
        conn.close()
