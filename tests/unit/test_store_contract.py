"""The store contract: store coroutines driven at once on SQLite, the dialect table,
and the migration module upgrading databases of every older version."""
from __future__ import annotations

import asyncio
import functools
import re
import sqlite3
import threading
from pathlib import Path

import pytest

from coordinator.database import Database
from coordinator.store.connection import Connection, Suspended, is_store_function, run_sync
from coordinator.store.dialect import POSTGRESQL, SQLITE, numbered
from coordinator.store.migrations import MIGRATIONS, _statements, migrate
from coordinator.store.sqlite import SQLiteConnection

STORE = Path(__file__).parents[2] / "coordinator" / "store"



async def insert(c: Connection, k: int, v: str) -> int:
    return await c.execute("INSERT INTO t VALUES (?, ?)", (k, v))


async def insert_then_wait(c: Connection, k: int) -> None:
    await c.execute("INSERT INTO t VALUES (?, 'waited')", (k,))
    await asyncio.sleep(0)  # really suspends: nothing a store function may do


async def listing(c: Connection) -> list[dict]:
    return [dict(r) for r in await c.fetchall("SELECT k, v FROM t ORDER BY k")]


def test_a_coroutine_that_never_suspends_is_driven_to_its_end_at_once():
    async def answer(x: int) -> int:
        return x * 2

    assert run_sync(answer(21)) == 42


def test_a_coroutine_that_suspends_is_refused_and_closed():
    finished = []

    async def waits() -> None:
        try:
            await asyncio.sleep(0)
        finally:
            finished.append("closed")

    with pytest.raises(Suspended, match="waits"):
        run_sync(waits())
    assert finished == ["closed"]


async def test_store_functions_get_the_contract_and_plain_functions_the_sqlite3_connection(db):
    assert is_store_function(insert) and is_store_function(functools.partial(insert, k=1))
    assert not is_store_function(lambda c: None) and not is_store_function(print)
    assert await db.write(lambda c: type(c).__name__) == "Connection"
    assert await db.write(functools.partial(insert, v="p"), 7) == 1
    assert await db.read(lambda c: c.execute("SELECT v FROM t").fetchone()[0]) == "p"


async def test_a_write_that_suspends_fails_and_leaves_nothing_behind(db):
    task = asyncio.ensure_future(db.write(insert, 1, "now"))
    await asyncio.sleep(0)  # driven in the caller's turn of the loop: no hop, no batch
    assert task.done() and task.result() == 1
    with pytest.raises(Suspended):
        await db.write(insert_then_wait, 2)
    assert await db.read(listing) == [{"k": 1, "v": "now"}]


async def test_reads_run_on_their_own_thread_and_their_errors_reach_the_caller(db):
    await db.write(insert, 3, "c")
    thread = await db.read(lambda c: threading.current_thread().name)
    assert thread != threading.current_thread().name
    assert await db.read(listing) == [{"k": 3, "v": "c"}]
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        await db.read(lambda c: c.execute("SELECT * FROM missing"))
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        await db.read(insert, 4, "d")   # the reading connection is query-only
    assert (await db.fetchone("SELECT v FROM t WHERE k = ?", (3,)))["v"] == "c"


def test_store_modules_hold_no_sqlite_only_sql_or_api():
    """SQLite's own words belong in dialect.py, migrations.py and the adapter."""
    sqlite_only = re.compile(r"sqlite3|PRAGMA|json_extract|INSERT OR|AUTOINCREMENT|WITHOUT ROWID"
                             r"|lastrowid|\.fetchone\(\)|\.fetchall\(\)|executescript")
    own = {"dialect.py", "migrations.py", "sqlite.py"}
    offenders = {p.name: m.group(0) for p in STORE.glob("*.py") if p.name not in own
                 for m in [sqlite_only.search(p.read_text())] if m}
    assert offenders == {}


# -- the dialect table --------------------------------------------------------------
def test_both_dialects_name_every_difference():
    for field in SQLITE.__dataclass_fields__:
        assert getattr(SQLITE, field) != getattr(POSTGRESQL, field), field
    assert POSTGRESQL.json_text("s.render", "camera") == "((s.render)::jsonb ->> 'camera')"
    assert SQLITE.sql("SELECT ? WHERE a = '?'") == "SELECT ? WHERE a = '?'"
    assert POSTGRESQL.sql("SELECT ?, 'it''s ?', \"a?\" WHERE b = ?") \
        == "SELECT $1, 'it''s ?', \"a?\" WHERE b = $2"
    assert numbered("UPDATE t SET a = ? WHERE (x, y) > (?, ?)") \
        == "UPDATE t SET a = $1 WHERE (x, y) > ($2, $3)"


def test_sqlite_fragments_do_what_the_table_says(tmp_path):
    raw = sqlite3.connect(tmp_path / "d.db", isolation_level=None)
    raw.row_factory = sqlite3.Row
    c = SQLiteConnection(raw)
    raw.execute(f"CREATE TABLE s (id {SQLITE.identity_key}, render TEXT, data {SQLITE.blob})")
    raw.execute("INSERT INTO s (render, data) VALUES (?, ?)", ('{"camera": "Cam"}', b"\0\1"))
    raw.execute("INSERT INTO s (render, data) VALUES ('{}', NULL)")
    raw.execute("DELETE FROM s WHERE id = 2")

    async def check() -> None:
        assert await c.fetchval(f"SELECT {SQLITE.json_text('render', 'camera')} FROM s") == "Cam"
        assert await c.fetchval("SELECT data FROM s") == b"\0\1"
        # An identity key never gives an id twice, even the newest one deleted.
        assert await c.fetchval("INSERT INTO s (render) VALUES ('{}') RETURNING id") == 3
        assert len(await c.fetchall("SELECT id FROM s LIMIT ?", (SQLITE.no_limit,))) == 2
        assert await c.fetchval(SQLITE.schema_version) == 0
        await c.execute(SQLITE.set_schema_version.format(version=5))
        assert await c.fetchval(SQLITE.schema_version) == 5
        await c.execute(SQLITE.begin_write)   # takes the write lock at once
        other = sqlite3.connect(tmp_path / "d.db", timeout=0, isolation_level=None)
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute(SQLITE.begin_write)
        other.close()
        await c.execute("ROLLBACK")

    run_sync(check())
    raw.close()


# -- the migration module -----------------------------------------------------------
def schema(path: Path) -> tuple[int, list[tuple]]:
    conn = sqlite3.connect(path)
    try:
        return (conn.execute("PRAGMA user_version").fetchone()[0],
                conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master "
                             "WHERE name != 'sqlite_sequence' ORDER BY name").fetchall())
    finally:
        conn.close()


def at_version(path: Path, version: int) -> None:
    """A database as the first `version` scripts left it, the way releases made it."""
    conn = sqlite3.connect(path, isolation_level=None)
    for number, script in enumerate(MIGRATIONS[:version], start=1):
        for statement in _statements(script):
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version={number}")
    conn.close()


@pytest.mark.parametrize("version", range(len(MIGRATIONS)))
async def test_a_database_of_every_older_version_upgrades_to_todays_schema(tmp_path, version):
    fresh, old = tmp_path / "fresh.db", tmp_path / "old.db"
    at_version(fresh, len(MIGRATIONS))
    at_version(old, version)
    db = Database(old)
    await db.open()
    await db.close()
    assert schema(old) == schema(fresh)
    assert schema(old)[0] == len(MIGRATIONS)


async def test_migrate_runs_only_the_scripts_a_database_has_not_had(tmp_path):
    """Version 4's shots keep their format as overrides (script 7), and opening a
    database that is up to date runs nothing."""
    path = tmp_path / "v4.db"
    at_version(path, 4)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(
        """INSERT INTO shots (id, name, status, priority, blend_path, files, frame_start,
           frame_end, frame_step, chunk_size, output_format, resolution_percentage, fps,
           created_at) VALUES (3, 'old', 'queued', 50, 'a.blend', '[]', 1, 1, 1, 1,
           'JPEG', 50, 24, 0)""")
    conn.close()
    raw = sqlite3.connect(path, isolation_level=None)
    raw.row_factory = sqlite3.Row
    c = SQLiteConnection(raw)
    assert run_sync(migrate(c)) == len(MIGRATIONS)
    assert raw.execute("SELECT render, chunk_mode FROM shots").fetchone()[:] == (
        '{"output_format":"JPEG","resolution_percentage":50}', "auto")
    raw.execute("PRAGMA user_version=0")   # would run every script again, and fail
    with pytest.raises(sqlite3.OperationalError, match="already exists"):
        run_sync(migrate(c))
    raw.execute(f"PRAGMA user_version={len(MIGRATIONS)}")
    assert run_sync(migrate(c)) == len(MIGRATIONS)   # nothing to run
    raw.close()
